"""Lightning glue shared by every domain: optimisation, throughput counting, config in checkpoints.

A domain task subclasses :class:`BaseTask` and implements ``shared_step(batch, stage)`` returning
the loss; metrics are torchmetrics objects logged as ``train/...``, ``val/...``, ``test/...``.
:class:`ClassificationTask` is the generic one (images, text): batches are
``(*inputs, target)`` and ``model(*inputs)`` returns logits.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from core.train.checkpoints import LAYOUT, migrate_checkpoint
from core.train.optim import param_groups
from core.train.protocols import ExplainsAttention

__all__ = ["BaseTask", "ClassificationTask", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or Inf."""


class BaseTask(L.LightningModule, abc.ABC):
    """Owns the model, the optimiser/scheduler factories and the run's resolved config.

    Args:
        model: the ``nn.Module`` (built by Hydra from ``model:``).
        optimizer: a partial optimiser, ``optimizer(params)`` (Hydra ``_partial_``).
        scheduler: a partial ``scheduler(optimizer, total_steps=...)`` or ``None``.
        weight_decay: applied to weights only (see :func:`core.train.optim.param_groups`).
    """

    def __init__(self, model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., Any] | None = None, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer or torch.optim.AdamW
        self.scheduler_factory = scheduler
        self.weight_decay = weight_decay
        self.layer_decay: float | None = None  # set by fine-tuning (finetune.layer_decay)
        self.run_config: dict | None = None  # resolved config, stored in every checkpoint
        self.samples_seen = 0
        self.train_time = 0.0
        self._step_start: float | None = None

    # --- the config travels with the checkpoint, so mas-eval / mas-predict need only the file
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["mas_config"] = self.run_config
        checkpoint["mas_layout"] = LAYOUT

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        migrate_checkpoint(checkpoint)  # resuming a run written by an older layout

    # --- throughput accounting: time spent inside training steps (forward, backward, update)
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._step_start is not None:
            self.train_time += time.perf_counter() - self._step_start

    def count(self, batch_size: int) -> None:
        self.samples_seen += batch_size

    def check_finite(self, loss: Tensor) -> Tensor:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.global_step}; the last good "
                "checkpoint is kept (try a lower optimizer.lr or gradient clipping).")
        return loss

    def configure_optimizers(self):
        groups = param_groups(self.model, weight_decay=self.weight_decay, layer_decay=self.layer_decay)
        in_model = {id(p) for p in self.model.parameters()}
        rest = [p for p in self.parameters() if id(p) not in in_model and p.requires_grad]
        if rest:  # task-level parameters, if a task has any
            groups.append({"params": rest, "weight_decay": self.weight_decay})
        kw = {}
        if "mixed" in str(self.trainer.precision) and getattr(self.optimizer_factory, "keywords", {}).get("fused"):
            # a fused step unscales AMP gradients itself, and Lightning then refuses gradient clipping
            kw["fused"] = False
        opt = self.optimizer_factory(groups, **kw)
        for g in opt.param_groups:  # layer-wise decay: scale before the scheduler records base LRs
            g["lr"] = g["lr"] * g.pop("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(opt, total_steps=max(1, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @abc.abstractmethod
    def shared_step(self, batch: Any, stage: str) -> Tensor:
        """The loss of one batch; logs ``{stage}/...`` metrics. Every task implements it."""

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.check_finite(self.shared_step(batch, "train"))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def log(self, name: str, value: Any, *args: Any, **kw: Any) -> None:
        # names are unique per test loader by construction (test/acc, test/acc_<subset>): no
        # "/dataloader_idx_N" suffix when a datamodule adds test subsets
        kw.setdefault("add_dataloader_idx", False)
        super().log(name, value, *args, **kw)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 0:
            self.shared_step(batch, "test")
        else:
            self.subset_step(batch, self.trainer.datamodule.test_subsets[dataloader_idx - 1])

    def subset_step(self, batch: Any, subset: str) -> None:
        """Score one batch of the test subset ``subset`` (see :class:`core.train.data.SplitDataModule`).

        Classification and translation implement it; the other tasks' datamodules add no subsets, so
        reaching this default means a datamodule was paired with a task that cannot score its subsets,
        and the run stops with that sentence rather than dropping the subset's metrics silently."""
        raise NotImplementedError(f"{type(self).__name__} does not report test subsets ({subset}).")


class ClassificationTask(BaseTask):
    """Cross-entropy classification with accuracy (torchmetrics). Batches: ``(*inputs, target)``;
    ``num_classes`` defaults to the model's."""

    def __init__(self, model: nn.Module, *, num_classes: int | None = None, label_smoothing: float = 0.0,
                 **kw) -> None:
        super().__init__(model, **kw)
        num_classes = int(num_classes or model.num_classes)  # folder datasets size the model from disk
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes
        self.acc = nn.ModuleDict({s: torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
                                  for s in ("train_", "val_", "test_")})
        self.subset_acc = nn.ModuleDict()  # filled on first use: the subsets are the datamodule's

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.model(*inputs)

    def shared_step(self, batch: Any, stage: str) -> Tensor:
        *inputs, y = batch
        logits = self(*inputs)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        acc = self.acc[stage + "_"]
        acc(logits.detach(), y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=on_step, on_step=on_step, on_epoch=True, batch_size=len(y))
        self.log(f"{stage}/acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        if stage == "train":
            self.count(len(y))
        return loss

    def subset_step(self, batch: Any, subset: str) -> None:
        *inputs, y = batch
        if subset not in self.subset_acc:
            self.subset_acc[subset] = torchmetrics.Accuracy(task="multiclass", num_classes=self.num_classes).to(
                self.device)
        acc = self.subset_acc[subset]
        acc(self(*inputs).detach(), y)
        self.log(f"test/acc_{subset}", acc, on_step=False, on_epoch=True, batch_size=len(y),
                 metric_attribute=f"subset_acc.{subset}")  # Lightning indexes metric attributes once, at first log

    def attention_example(self, batch: Any, datamodule: Any = None) -> dict:
        """The model's attention example for the first item (:mod:`core.report.gallery`)."""
        if not isinstance(self.model, ExplainsAttention):
            raise TypeError(f"{type(self.model).__name__} has no attention_example(inputs, label, datamodule).")
        *inputs, y = batch
        return self.model.attention_example(tuple(t[:1] for t in inputs), int(y[0]), datamodule)
