"""Lightning task modules for vision: segmentation (mIoU) and classification with Mixup/CutMix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from core.train.tasks import BaseTask, ClassificationTask
from vision.plots import save_overlay

__all__ = ["MixupClassificationTask", "SegmentationTask"]


class SegmentationTask(BaseTask):
    """Per-pixel cross-entropy; ``{stage}/miou`` is torchmetrics' macro Jaccard index over the split
    (classes absent from both prediction and target are left out of the mean), ``{stage}/pixel_acc``
    the pixel accuracy. Label ``ignore_index`` pixels count nowhere.

    At the end of testing, colour overlays of the first ``num_overlays`` test images are saved as
    PNG under ``<run dir>/overlays/``.
    """

    def __init__(self, model: nn.Module, *, num_classes: int, ignore_index: int = 255, num_overlays: int = 4,
                 **kw: Any) -> None:
        super().__init__(model, **kw)
        self.num_classes, self.ignore_index, self.num_overlays = num_classes, ignore_index, num_overlays
        self.miou = nn.ModuleDict({s: torchmetrics.JaccardIndex(task="multiclass", num_classes=num_classes,
                                                                average="macro", ignore_index=ignore_index)
                                   for s in ("train_", "val_", "test_")})
        self.pixel_acc = nn.ModuleDict({s: torchmetrics.Accuracy(task="multiclass", num_classes=num_classes,
                                                                 average="micro", ignore_index=ignore_index)
                                        for s in ("train_", "val_", "test_")})
        self._overlay_batch: tuple[Tensor, Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def shared_step(self, batch: Any, stage: str) -> Tensor:
        x, y = batch  # (B, C, H, W), (B, H, W)
        logits = self(x)  # (B, K, H, W)
        loss = F.cross_entropy(logits.float(), y, ignore_index=self.ignore_index)
        pred = logits.detach().argmax(1)
        miou, acc = self.miou[stage + "_"], self.pixel_acc[stage + "_"]
        miou(pred, y)
        acc(pred, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=on_step, on_step=on_step, on_epoch=True, batch_size=len(y))
        self.log(f"{stage}/miou", miou, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log(f"{stage}/pixel_acc", acc, on_step=False, on_epoch=True, batch_size=len(y))
        if stage == "train":
            self.count(len(y))
        if stage == "test" and self._overlay_batch is None:
            self._overlay_batch = (x.detach().cpu(), pred.cpu(), y.cpu())
        return loss

    def on_test_epoch_start(self) -> None:
        self._overlay_batch = None

    def on_test_epoch_end(self) -> None:
        if self._overlay_batch is None or not self.trainer.is_global_zero or self.num_overlays <= 0:
            return
        x, pred, y = self._overlay_batch
        dm = self.trainer.datamodule
        out = Path(self.trainer.default_root_dir) / "overlays"
        for i in range(min(self.num_overlays, len(x))):
            img = dm.denormalize(x[i]) if hasattr(dm, "denormalize") else x[i]
            save_overlay(img, pred[i], out / f"test_{i:02d}_pred.png", num_classes=self.num_classes)
            save_overlay(img, y[i], out / f"test_{i:02d}_true.png", num_classes=self.num_classes)


class MixupClassificationTask(ClassificationTask):
    """:class:`core.train.tasks.ClassificationTask` plus timm's Mixup/CutMix on training batches.

    Args:
        mixup: keyword arguments of :class:`timm.data.Mixup` (``mixup_alpha``, ``cutmix_alpha``,
            ``prob``, ``switch_prob``, ``mode``, ``label_smoothing``); ``None`` or ``{}`` disables it.
            With Mixup the training loss is soft-target cross-entropy and ``train/acc`` is measured
            against each mixed batch's dominant label.
    """

    def __init__(self, model: nn.Module, *, num_classes: int | None = None, mixup: dict | None = None,
                 **kw: Any) -> None:
        super().__init__(model, num_classes=num_classes, **kw)
        num_classes = self.acc["train_"].num_classes
        self.mixup = None
        if mixup and (mixup.get("mixup_alpha", 1.0) > 0 or mixup.get("cutmix_alpha", 0.0) > 0):
            from timm.data import Mixup
            from timm.loss import SoftTargetCrossEntropy

            self.soft_ce = SoftTargetCrossEntropy()
            self.mixup = Mixup(num_classes=num_classes, **{"label_smoothing": self.label_smoothing, **mixup})

    def shared_step(self, batch: Any, stage: str) -> Tensor:
        if stage != "train" or self.mixup is None:
            return super().shared_step(batch, stage)
        x, y = batch
        if len(x) % 2:  # timm's Mixup pairs samples; an odd tail batch is dropped by the loaders
            x, y = x[:-1], y[:-1]
        x, soft = self.mixup(x, y)  # soft (B, K)
        logits = self(x)
        loss = self.soft_ce(logits.float(), soft)
        acc = self.acc["train_"]
        acc(logits.detach(), soft.argmax(-1))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        self.log("train/acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.count(len(y))
        return loss
