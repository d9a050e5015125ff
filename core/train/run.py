"""Build a run from a resolved config, train/evaluate it, write ``metrics.json``.

Used by the Hydra apps in :mod:`core.train.cli`; importable without Hydra's app machinery, so tests and
notebooks can call :func:`train` with a composed config.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from core.train.callbacks import EpochReseed, LearningCurve, SameConfigAcrossRanks
from core.train.checkpoints import checkpoint_config, load_checkpoint
from core.train.errors import ConfigError, InputError
from core.train.finetune import FreezeEncoder, load_pretrained
from core.train.protocols import ProvidesModelFacts
from core.train.tasks import BaseTask
from core.train.validate import validate

__all__ = ["build", "evaluate", "load_for_predict", "restore", "set_threads", "train", "write_metrics"]


def _choices(cfg: DictConfig) -> dict[str, str]:
    meta = cfg.get("meta") or {}
    return {k: str(meta.get(k, "")) for k in ("experiment", "attention", "pe")}


def _instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with errors turned into one sentence naming the key."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:  # noqa: BLE001 - re-raised as a ConfigError with the root cause
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        msg = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
        if isinstance(root, (ValueError, TypeError, KeyError, FileNotFoundError, ImportError,
                             MisconfigurationException)):
            raise ConfigError(f"{key}: {msg}") from exc
        raise


def build(cfg: DictConfig, *, setup_stage: str = "fit",
          ckpt: dict | None = None) -> tuple[L.LightningDataModule, BaseTask]:
    """Datamodule and task module from the config (data first: it may fix model sizes).

    With ``ckpt``, the datamodule's state saved in it (Lightning stores ``datamodule.state_dict()``
    under the class name: tokenizers, vocabularies) is loaded before ``setup``;
    ``setup("predict")`` must not build datasets.
    """
    for key in ("data", "model", "module"):
        if cfg.get(key) is None:
            raise ConfigError(f"the config has no '{key}' section; pick a recipe with experiment=<domain>/<name>.")
    dm = _instantiate(cfg.data, "data")
    if ckpt is not None and type(dm).__qualname__ in ckpt:
        dm.load_state_dict(ckpt[type(dm).__qualname__])
    if setup_stage != "predict":
        dm.prepare_data()
    dm.setup(setup_stage)
    extra = dm.model_kwargs() if isinstance(dm, ProvidesModelFacts) else {}
    model = _instantiate(cfg.model, "model", **extra)
    module = _instantiate(cfg.module, "module", model=model)
    ft = cfg.get("finetune") or {}
    if ft.get("from") and setup_stage == "fit" and ckpt is None:
        load_pretrained(module.model, str(ft["from"]))
    module.layer_decay = ft.get("layer_decay")
    keys = [k for k in cfg if k != "hydra"]  # tests compose with the hydra node attached
    module.run_config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    return dm, module


def _trainer(cfg: DictConfig, out_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    callbacks = [_instantiate(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items()
                 if c is not None and "_target_" in c] + list(extra_callbacks or [])
    loggers = [_instantiate(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()
               if c is not None and "_target_" in c]
    if not loggers:  # a learning-rate monitor with nowhere to write would stop the run
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if "progress" not in " ".join(type(c).__name__.lower() for c in callbacks):
        tcfg.setdefault("enable_progress_bar", False)
    tcfg.setdefault("default_root_dir", str(out_dir))
    return _instantiate(tcfg, "trainer", callbacks=callbacks, logger=loggers or False)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if torch.is_tensor(v) or isinstance(v, (int, float))}


def _device(trainer: L.Trainer) -> str:
    dev = trainer.strategy.root_device
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type


def set_threads(cfg: DictConfig) -> None:
    """Apply the runtime key ``threads=`` (torch CPU threads of this process) shared by every CLI."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))


def write_metrics(out_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (a crash never leaves half a file)."""
    path = Path(out_dir) / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def _resume_path(cfg: DictConfig, out_dir: Path) -> tuple[str, dict] | tuple[None, None]:
    """The checkpoint to resume from and its contents (read once), or ``(None, None)``."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("resume") or ckpt == "last":
        last = out_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ConfigError(f"resume=true but {last} does not exist; pass the run's own directory "
                              "with hydra.run.dir=<run dir>.")
        try:
            stored = load_checkpoint(last)
            checkpoint_config(stored, last, task=cfg.task)
        except InputError as exc:
            return _fall_back(last, cfg.task, exc)
        return str(last), stored
    if ckpt:
        stored = load_checkpoint(ckpt)  # fails with one sentence on a missing or corrupt file
        checkpoint_config(stored, ckpt, task=cfg.task)  # ... and on a checkpoint of another task
        return str(ckpt), stored
    return None, None


def _check_fits(module: BaseTask, ckpt: dict, path: str) -> None:
    """A checkpoint to resume from must hold this run's model: else one sentence before Lightning's wall of text."""
    stored = ckpt["state_dict"]
    own = module.state_dict()
    for key, value in own.items():
        if key not in stored or tuple(stored[key].shape) != tuple(value.shape):
            have = "lacks it" if key not in stored else f"has {tuple(stored[key].shape)}"
            raise ConfigError(f"checkpoint {path} does not hold this run's model ({key}: the run needs "
                              f"{tuple(value.shape)}, the checkpoint {have}); resume with the run's own config.")


def _fall_back(last: Path, task: str, why: InputError) -> tuple[str, dict]:
    """Resume from the newest readable checkpoint beside an unreadable ``last.ckpt`` (kept, renamed
    ``last.ckpt.corrupt``), saying so in one sentence."""
    good = []
    for path in sorted(last.parent.glob("*.ckpt")):
        if path == last:
            continue
        try:
            stored = load_checkpoint(path)
            checkpoint_config(stored, path, task=task)
        except InputError:
            continue
        good.append((int(stored.get("global_step", 0)), path, stored))
    if not good:
        raise InputError(f"{why} No other checkpoint in {last.parent} can be read to resume from.") from why
    step, path, stored = max(good, key=lambda g: (g[0], g[1]))
    os.replace(last, last.with_name("last.ckpt.corrupt"))
    print(f"warning: {last} is truncated or corrupt (kept as last.ckpt.corrupt); resuming from {path.name} "
          f"(step {step}) instead.", file=sys.stderr, flush=True)
    return str(path), stored


def train(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Fit, test the best checkpoint, write ``metrics.json`` (rank 0); returns the metrics."""
    out_dir = Path(out_dir)
    validate(cfg)
    set_threads(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, module = build(cfg)
    if cfg.get("compile"):
        module.model.compile()  # in place: state-dict keys (and so checkpoints) stay those of the eager model
    curve = LearningCurve(str(OmegaConf.select(cfg, "monitor.metric", default="val/loss")))
    extra = [EpochReseed(cfg.seed), SameConfigAcrossRanks(module.run_config), curve]
    freeze = int(OmegaConf.select(cfg, "finetune.freeze_encoder_epochs", default=0) or 0)
    if freeze > 0:
        extra.append(FreezeEncoder(freeze))
    ckpt, stored = _resume_path(cfg, out_dir)
    if ckpt:
        _check_fits(module, stored, ckpt)
    trainer = _trainer(cfg, out_dir, extra)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    wall = time.perf_counter() - t0
    fit_metrics = _floats(trainer.callback_metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)
    metrics = {**fit_metrics, **_floats(trainer.callback_metrics)}
    step_seconds = max(module.train_time, 1e-9)
    record = {
        "task": cfg.task,
        **_choices(cfg),
        "seed": int(cfg.seed),
        "params": int(sum(p.numel() for p in module.model.parameters())),
        "train_seconds": round(wall, 3),  # wall time of fit (training + validation)
        "step_seconds": round(step_seconds, 3),  # time inside training steps
        "train_samples_per_second": round(module.samples_seen * trainer.world_size / step_seconds, 3),
        "epochs": int(trainer.current_epoch),
        "precision": str(trainer.precision),
        "world_size": int(trainer.world_size),
        "device": _device(trainer),
        "best_checkpoint": best,
        "monitor": str(OmegaConf.select(cfg, "monitor.metric", default="")),
        "monitor_mode": str(OmegaConf.select(cfg, "monitor.mode", default="max")),
        **{k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))},
        "seed_varies": _seed_varies(dm),
        "curve": curve.points,  # the monitored val metric at every validation: step, seconds, value
    }
    if trainer.is_global_zero:
        write_metrics(out_dir, record)
    return record


def _seed_varies(dm: L.LightningDataModule) -> list[str]:
    """What a run's seed changes: always the initialisation and the data order; the train/val split too
    where the datamodule redraws it per seed (repeated hold-out on the small embedded sets)."""
    return ["init", "data order"] + (["train/val split"] if getattr(dm, "split_varies_with_seed", False) else [])


def evaluate(ckpt_path: str, out_dir: str | Path, overrides: dict[str, Any] | None = None,
             trainer_cfg: DictConfig | None = None) -> dict[str, Any]:
    """Re-test a checkpoint on its task's test split; only the checkpoint file is needed."""
    out_dir = Path(out_dir)
    cfg, dm, module = restore(ckpt_path, "test", overrides)
    tcfg = trainer_cfg if trainer_cfg is not None else cfg.trainer
    trainer = L.Trainer(**{**{k: v for k, v in OmegaConf.to_container(tcfg, resolve=True).items()
                              if k in ("accelerator", "devices", "precision")},
                           "logger": False, "enable_progress_bar": False, "default_root_dir": str(out_dir)})
    trainer.test(module, datamodule=dm, verbose=False)
    record = {
        "task": cfg.task, **_choices(cfg), "seed": int(cfg.seed),
        "params": int(sum(p.numel() for p in module.model.parameters())),
        "checkpoint": str(Path(ckpt_path).resolve()), "device": _device(trainer),
        **{k: v for k, v in _floats(trainer.callback_metrics).items() if k.startswith("test/")},
    }
    if trainer.is_global_zero:
        write_metrics(out_dir, record)
    return record


def restore(ckpt_path: str, stage: str, overrides: dict[str, Any] | None = None,
            ) -> tuple[DictConfig, L.LightningDataModule, BaseTask]:
    """Config, datamodule (``setup(stage)``) and task module with the checkpoint's weights.

    A checkpoint that cannot be rebuilt gets one sentence; for one of an older layout the sentence says so.
    """
    ckpt = load_checkpoint(ckpt_path)
    cfg = OmegaConf.create(checkpoint_config(ckpt, ckpt_path))
    if "data.size_ratio" in (overrides or {}):
        _check_sizes(cfg, ckpt_path)
    for key, value in (overrides or {}).items():
        OmegaConf.update(cfg, key, value, merge=True)
    old = ckpt.get("mas_migrated_from")
    try:
        dm, module = build(cfg, setup_stage=stage, ckpt=ckpt)
        module.load_state_dict(ckpt["state_dict"])
    except (ConfigError, RuntimeError) as exc:
        if old is not None:
            raise ConfigError(f"checkpoint {ckpt_path} comes from an older layout of this suite (layout {old}) "
                              f"that could not be mapped onto today's ({type(exc).__name__}); retrain it.") from exc
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"checkpoint {ckpt_path} does not match the model its config describes.") from exc
    return cfg, dm, module


def _check_sizes(cfg: DictConfig, ckpt_path: str) -> None:
    """A test split at another input size needs a datamodule that can build one (``size_ratio``)."""
    import inspect

    from hydra.utils import get_class

    target = str(OmegaConf.select(cfg, "data._target_", default=""))
    try:
        takes = "size_ratio" in inspect.signature(get_class(target).__init__).parameters
    except Exception:  # noqa: BLE001 - an unimportable target is reported by build() in its own words
        return
    if not takes:
        raise ConfigError(f"size_ratio: the data of {ckpt_path} ({target.rsplit('.', 1)[-1]}) has no test split at "
                          "other sizes; the embedded digit_order, digit canvases, digits and spoken digits sets do.")


def load_for_predict(ckpt_path: str) -> tuple[DictConfig, L.LightningDataModule, BaseTask]:
    """Config, datamodule (``setup("predict")``) and task module in eval mode from a checkpoint."""
    cfg, dm, module = restore(ckpt_path, "predict")
    return cfg, dm, module.eval()
