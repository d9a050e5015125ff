"""Callbacks the training spine always adds (per-epoch reseeding, a DDP config check, the learning curve) and
the weight average a recipe may add (``callbacks.ema``)."""

from __future__ import annotations

import hashlib
import json
import os
import time

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

__all__ = ["EMA", "EpochReseed", "LearningCurve", "SameConfigAcrossRanks", "config_digest"]


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tell_samplers(loader, epoch: int) -> None:
    """Set ``epoch`` where Lightning sets it (``loader.sampler``, ``loader.batch_sampler.sampler``), but before
    the iterator draws: Lightning does it only after building a fit's first iterator, so a resumed run would
    draw epoch 0's order."""
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)


class EpochReseed(L.Callback):
    """Reseed every RNG from ``(seed, epoch)`` whenever an epoch's training iterator is created.

    Shuffling, augmentation and dropout of epoch ``e`` then do not depend on what ran before, so a
    run resumed from ``last.ckpt`` after a crash replays exactly what an uninterrupted run does.
    Lightning creates the first epoch's iterator (fresh or resumed) while setting up the fit loop,
    before it restores the loop's progress, and later ones after ``on_train_epoch_start``; so the
    reseed lives in the loader's ``__iter__`` and the epoch to resume is kept in this callback's
    own checkpoint state.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._trainer: L.Trainer | None = None
        self._resume_epoch: int | None = None

    def state_dict(self) -> dict:
        # checkpoints are written at the end of an epoch's validation: the next iterator is epoch + 1
        return {"next_epoch": self._trainer.current_epoch + 1 if self._trainer is not None else 0}

    def load_state_dict(self, state: dict) -> None:
        self._resume_epoch = int(state["next_epoch"])

    def _epoch(self) -> int:
        if self._resume_epoch is not None:
            epoch, self._resume_epoch = self._resume_epoch, None
            return epoch
        return self._trainer.fit_loop.epoch_progress.current.processed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        dm = trainer.datamodule
        if stage != "fit" or dm is None or getattr(dm, "_mas_reseeded", False):
            return
        load, cb = dm.train_dataloader, self

        def train_dataloader():
            loader = load()
            base = type(loader)

            def __iter__(self_):
                epoch = cb._epoch()
                L.seed_everything(cb.seed * 100_003 + epoch + 1, workers=True, verbose=False)
                _tell_samplers(self_, epoch)
                return base.__iter__(self_)

            loader.__class__ = type(f"Reseeding{base.__name__}", (base,), {"__iter__": __iter__})
            return loader

        dm.train_dataloader, dm._mas_reseeded = train_dataloader, True


class SameConfigAcrossRanks(L.Callback):
    """Under DDP, refuse to train if any rank composed a different config than rank 0.

    This catches the Hydra-multirun trap (a re-launched rank re-running the sweep with other values).
    """

    def __init__(self, config: dict) -> None:
        self.digest = config_digest(config)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size <= 1 or stage != "fit":
            return
        # one write(2) call: lines of several ranks sharing a pipe never interleave
        os.write(2, f"[rank {trainer.global_rank}] config sha256={self.digest}\n".encode())
        reference = trainer.strategy.broadcast(self.digest, src=0)
        if reference != self.digest:
            raise RuntimeError(f"rank {trainer.global_rank} composed a different config than rank 0 "
                               f"({self.digest} != {reference}); refusing to train.")


class LearningCurve(L.Callback):
    """The monitored validation metric after every validation pass, against optimizer steps and
    wall-clock seconds of fitting; kept in checkpoints, so a resumed run continues its curve."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.points: list[dict[str, float]] = []
        self._start = 0.0
        self._offset = 0.0

    def state_dict(self) -> dict:
        return {"points": list(self.points)}

    def load_state_dict(self, state: dict) -> None:
        points = list(state.get("points", []))
        if len(points) < len(self.points):  # testing the best (earlier) checkpoint: keep the whole curve
            return
        self.points = points
        self._offset = self.points[-1]["seconds"] if self.points else 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        self.points.append({"step": int(trainer.global_step),
                            "seconds": round(self._offset + time.perf_counter() - self._start, 3),
                            "value": float(trainer.callback_metrics[self.metric])})


class EMA(WeightAveraging):
    """Exponential moving average of the weights (Lightning's :class:`WeightAveraging` with torch's EMA
    update): validation, checkpoints (``state_dict``) and everything after ``fit`` see the average.

    ``decay``: weight of the old average per step (0.998: about the last 500 steps count). ``start``: the
    first step averaged (the early, fast-moving weights are left out).

    Lightning's callback, asked to load a checkpoint outside ``fit`` (``trainer.test(ckpt_path=...)`` after
    training), puts the raw weights kept for resuming back into the model, so the test would score the
    raw weights, not the average every checkpoint holds; here only a resumed ``fit`` reloads them.
    """

    def __init__(self, decay: float = 0.998, start: int = 0) -> None:
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.start = int(start)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
