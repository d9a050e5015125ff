"""Lightning glue shared by every domain: optimisation, throughput counting, config in checkpoints.

A domain task subclasses :class:`BaseTask` and implements ``shared_step(batch, stage)`` returning
the loss; metrics are torchmetrics objects logged as ``train/...``, ``val/...``, ``test/...``.
:class:`ClassificationTask` is the generic one (images, text): batches are
``(*inputs, target)`` and ``model(*inputs)`` returns logits.
"""

from __future__ import annotations

import abc
import math
import re
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

__all__ = ["BaseTask", "ClassificationTask", "NonFiniteLossError", "param_groups", "warmup_cosine"]


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or Inf."""


def warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup: float = 0.05,
                  min_lr_ratio: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup`` (fraction of steps, or steps if >= 1), then cosine decay."""
    warm = int(warmup if warmup >= 1 else warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, tokens and PE tables (timm's rule: ndim <= 1 or tokens)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # frozen ones too: FreezeEncoder toggles requires_grad
        skip = p.ndim <= 1 or name.endswith(("token", "table", "pos_embed"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class BaseTask(L.LightningModule, abc.ABC):
    """Owns the model, the optimiser/scheduler factories and the run's resolved config.

    Args:
        model: the ``nn.Module`` (built by Hydra from ``model:``).
        optimizer: a partial optimiser, ``optimizer(params)`` (Hydra ``_partial_``).
        scheduler: a partial ``scheduler(optimizer, total_steps=...)`` or ``None``.
        weight_decay: applied to weights only (see :func:`param_groups`).
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
        if self.layer_decay:
            from core.finetune import layer_decay_groups

            groups = layer_decay_groups(self.model, weight_decay=self.weight_decay, layer_decay=self.layer_decay)
            in_model = {id(p) for p in self.model.parameters()}
            rest = [p for p in self.parameters() if id(p) not in in_model]  # task-level parameters, if any
            if rest:
                groups.append({"params": rest, "weight_decay": self.weight_decay})
        else:
            groups = param_groups(self, self.weight_decay)
        opt = self.optimizer_factory(groups)
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

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.shared_step(batch, "test")


class ClassificationTask(BaseTask):
    """Cross-entropy classification with accuracy (torchmetrics). Batches: ``(*inputs, target)``."""

    def __init__(self, model: nn.Module, *, num_classes: int, label_smoothing: float = 0.0, **kw) -> None:
        super().__init__(model, **kw)
        self.label_smoothing = label_smoothing
        self.acc = nn.ModuleDict({s: torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
                                  for s in ("train_", "val_", "test_")})

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

    def attention_example(self, batch: Any, datamodule: Any = None) -> dict:
        """One attention map for the cross-domain gallery (:mod:`core.gallery`)."""
        return classification_attention_example(self, batch, datamodule)


def last_encoder_map(mods: dict) -> Tensor:
    """Head-averaged map ``(Nq, Nk)`` of the first item from the deepest ``encoder.blocks.<i>.attn``."""
    depth = {n: int(m.group(1)) for n in mods if (m := re.search(r"(?:^|\.)encoder\.blocks\.(\d+)\.attn$", n))}
    name = max(depth, key=depth.get) if depth else list(mods)[-1]
    return mods[name].last_attn[0].float().mean(0)


def _token_labels(datamodule: Any, ids: list[int]) -> list[str]:
    tok = getattr(datamodule, "tokenizer", None)
    itos = getattr(tok, "itos", None)
    if itos is not None:
        return ["\u2423" if itos[i] == " " else itos[i] for i in ids]
    if tok is not None and hasattr(tok, "decode"):
        return [tok.decode([i]) or "·" for i in ids]
    return [str(i) for i in ids]


@torch.no_grad()
def classification_attention_example(module: ClassificationTask, batch: Any, datamodule: Any = None) -> dict:
    """Gallery example (see :mod:`core.gallery`): patches for image inputs, tokens for text."""
    from core.attention import record_attention

    *inputs, y = batch
    first = [t[:1] if torch.is_tensor(t) else t for t in inputs]
    module.eval()
    with record_attention(module.model) as mods:
        pred = module(*first).argmax(-1).item()
    attn = last_encoder_map(mods)
    prefix = int(getattr(module.model, "num_prefix", 0))
    x = first[0]
    if x.ndim == 4:  # (1, C, H, W): image patches
        gh, gw = getattr(module.model, "grid", (int(math.isqrt(attn.shape[-1] - prefix)),) * 2)
        query = attn[0, prefix:] if prefix else attn.mean(0)
        return {"kind": "patches", "attn": attn.numpy(), "image": x[0].mean(0).numpy(),
                "query_map": query.reshape(gh, gw).numpy(), "title": f"label {int(y[0])}, predicted {pred}"}
    ids = x[0].tolist()
    mask = first[1][0] if len(first) > 1 and torch.is_tensor(first[1]) else None
    keep = [i for i in range(len(ids)) if mask is None or not bool(mask[i])]
    a = attn[prefix:, prefix:][keep][:, keep] if prefix else attn[keep][:, keep]
    labels = _token_labels(datamodule, [ids[i] for i in keep])
    return {"kind": "tokens", "attn": a.numpy(), "labels": labels, "title": f"label {int(y[0])}, predicted {pred}"}
