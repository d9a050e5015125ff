"""The shared core, one sub-package per floor; each floor imports only the floors below it.

* :mod:`core.nn`: the layer library (attention, positional encodings, blocks, Conformer convolution,
  dropout, the capability check), torch and timm layers only;
* :mod:`core.train`: the Lightning/Hydra training spine (tasks, run, CLIs, callbacks, fine-tuning,
  validation, data plumbing, optimiser groups) and the Protocols a domain package implements;
* :mod:`core.report`: the cross-domain comparison (grids, statistics, report, attention gallery).
"""

#: where classes named by older checkpoints live now (old dotted prefix -> new); see core.train.checkpoints
MOVED = {
    "core.attention": "core.nn.attention",
    "core.pe": "core.nn.pe",
    "core.blocks": "core.nn.blocks",
    "core.dropout": "core.nn.dropout",
    "core.task.warmup_cosine": "core.train.optim.warmup_cosine",
    "core.task": "core.train.tasks",
    "core.finetune": "core.train.finetune",
    "core.callbacks": "core.train.callbacks",
}
