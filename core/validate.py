"""Start-up checks of a composed config: each failure is one sentence naming the key."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError

__all__ = ["validate"]

_PRECISIONS = {"32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "16",
               "transformer-engine"}


def _get(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


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
    attn, pe = cfg.get("attention") or {}, cfg.get("pe") or {}
    if "Linear" in str(attn.get("_target_", "")) and "ALiBi" in str(pe.get("_target_", "")):
        raise ConfigError("attention=linear cannot apply the logit bias of pe=alibi; choose another attention= or pe=.")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found."""
    _check_trainer(cfg)
    _check_data(cfg)
    _check_model(cfg)
