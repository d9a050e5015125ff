"""One-sentence errors for bad input: configs, checkpoints, files."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["ConfigError", "InputError", "checkpoint_config", "load_checkpoint"]


class ConfigError(ValueError):
    """A configuration that cannot work; the message is one sentence naming the key."""


class InputError(ValueError):
    """A bad input file or value (missing, corrupt, wrong kind); the message is one sentence."""


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing, truncated or foreign file gets one sentence."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p} does not exist.")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"checkpoint {p} is truncated or corrupt and cannot be read.") from exc
    except Exception as exc:  # noqa: BLE001 - unpickling errors of foreign files
        raise InputError(f"checkpoint {p} is not a checkpoint this suite can load safely ({type(exc).__name__}).") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(f"{p} is not a Lightning checkpoint (no state_dict).")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path, task: str | None = None) -> dict[str, Any]:
    """The run config stored in a checkpoint by :class:`core.task.BaseTask`; checks the task if given."""
    cfg = ckpt.get("mas_config")
    if not isinstance(cfg, dict):
        raise InputError(f"checkpoint {path} was not written by mas-train (it has no stored config).")
    if task is not None and cfg.get("task") != task:
        raise InputError(f"checkpoint {path} is for task '{cfg.get('task')}', not '{task}'.")
    return cfg
