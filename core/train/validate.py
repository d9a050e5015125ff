"""Start-up checks of a composed config: each failure is one sentence naming the key."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from core.nn.capabilities import incompatibility
from core.train.errors import ConfigError

__all__ = ["combination_error", "validate"]

_PRECISIONS = {"32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "16",
               "transformer-engine"}


def _get(cfg: DictConfig, key: str, default=None):
    try:
        return OmegaConf.select(cfg, key, default=default)
    except Exception:  # noqa: BLE001 - e.g. a ${hydra:...} value outside a Hydra app
        return default


def _check_trainer(cfg: DictConfig) -> None:
    accel = str(_get(cfg, "trainer.accelerator", "auto"))
    precision = str(_get(cfg, "trainer.precision", "32-true"))
    if precision not in _PRECISIONS:
        raise ConfigError(f"trainer.precision={precision} is not a precision Lightning knows "
                          "(use 32-true, bf16-mixed, 16-mixed, ...).")
    has_gpu = torch.cuda.is_available()
    if accel in ("gpu", "cuda") and not has_gpu:
        raise ConfigError(f"trainer.accelerator={accel} but no CUDA GPU is visible on this machine; use trainer=cpu.")
    on_cpu = accel == "cpu" or (accel == "auto" and not has_gpu)
    if on_cpu and precision in ("16-mixed", "16-true", "16"):
        raise ConfigError(f"trainer.precision={precision} needs a GPU; on the CPU use bf16-mixed or 32-true.")
    if cfg.get("compile") and str(_get(cfg, "trainer.strategy", "auto")).startswith("fsdp"):
        raise ConfigError("compile=true is not supported together with trainer.strategy=fsdp here; drop one of them.")
    for key in ("trainer.max_epochs", "trainer.devices", "trainer.num_nodes"):
        v = _get(cfg, key)
        if isinstance(v, int) and v == 0 or isinstance(v, int) and v < -1:
            raise ConfigError(f"{key}={v} must be a positive number.")


def _check_data(cfg: DictConfig) -> None:
    bs = _get(cfg, "data.batch_size")
    if bs is not None and (not isinstance(bs, int) or bs < 1):
        raise ConfigError(f"data.batch_size={bs} must be a positive integer.")
    lr = _get(cfg, "module.optimizer.lr")
    if lr is not None and (not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"module.optimizer.lr={lr} must be a positive number.")


def _check_model(cfg: DictConfig) -> None:
    model = cfg.get("model") or {}
    for node_key, node in [("model", model)] + [(f"model.{k}", v) for k, v in model.items() if isinstance(v, DictConfig)]:
        dim, heads = node.get("dim"), node.get("num_heads")
        if isinstance(dim, int) and isinstance(heads, int):
            if heads < 1 or dim % heads:
                raise ConfigError(f"{node_key}.dim={dim} is not divisible by {node_key}.num_heads={heads}.")
        depth = node.get("depth")
        if isinstance(depth, int) and depth < 1:
            raise ConfigError(f"{node_key}.depth={depth} must be at least 1.")
    why = combination_error(cfg)
    if why:
        raise ConfigError(why)


def _factory(node: Any) -> Any:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        return instantiate(node)
    except Exception:  # noqa: BLE001 - the model's own instantiation reports a bad target with its key
        return None


def combination_error(cfg: DictConfig, names: tuple[str, str] | None = None) -> str | None:
    """Why the config's attention / PE / model combination cannot work (by the classes' declared
    capabilities, :mod:`core.nn.capabilities`), or ``None``."""
    model = cfg.get("model") or {}
    attn = _factory(model.get("attn", cfg.get("attention")))
    pe = _factory(model.get("pe", cfg.get("pe")))
    try:
        ndim = getattr(get_class(str(model.get("_target_"))), "pos_ndim", None)
    except Exception:  # noqa: BLE001 - as above
        ndim = None
    names = names or (str(_get(cfg, "meta.attention", "?")), str(_get(cfg, "meta.pe", "?")))
    return incompatibility(attn, pe, ndim=ndim, names=names)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found."""
    _check_trainer(cfg)
    _check_data(cfg)
    _check_model(cfg)
