"""Reading checkpoints: one sentence for a bad file, and migration of older layouts.

Checkpoints carry the run's resolved config (``mas_config``) and the layout version they were
written with (``mas_layout``). A checkpoint of an older layout names classes at their old module
paths (``core.attention.MultiHeadAttention``, ``vision.model.ViT``); :func:`migrate_checkpoint` maps
them to today's through the ``MOVED`` table that each top-level package declares in its
``__init__`` (old dotted prefix -> new one). State-dict keys that changed are renamed by the models'
own ``_load_from_state_dict`` hooks. Whatever cannot be mapped gets one sentence saying the
checkpoint comes from an older layout.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

import torch

from core.train.errors import InputError
from core.train.weights_file import is_weights_dir, load_weights_dir

__all__ = ["LAYOUT", "checkpoint_config", "load_checkpoint", "migrate_checkpoint", "moved_target"]

#: layout version written into every checkpoint (1: before core/{nn,train,report}; 2: 2-D sinusoidal
#: tables with the row block first; 3: today's, MAE's column-first table)
LAYOUT = 3

_SINUSOIDAL = "core.nn.pe.SinusoidalPE"



def moved_target(target: str) -> str:
    """``target`` at its current path, following the ``MOVED`` table of its top-level package."""
    top = target.split(".", 1)[0]
    try:
        moved = getattr(importlib.import_module(top), "MOVED", {})
    except ImportError:
        return target
    for old in sorted(moved, key=len, reverse=True):
        if target == old or target.startswith(old + "."):
            return moved[old] + target[len(old):]
    return target


def _retarget(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: moved_target(v) if k == "_target_" and isinstance(v, str) else _retarget(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_retarget(v) for v in node]
    return node


def _keep_rows_first(node: Any) -> None:
    """Layouts before 3 built 2-D sinusoidal tables with the row block first: keep that for their weights."""
    if isinstance(node, dict):
        if node.get("_target_") == _SINUSOIDAL:
            node.setdefault("axis_order", "rows_first")
        for v in node.values():
            _keep_rows_first(v)
    elif isinstance(node, list):
        for v in node:
            _keep_rows_first(v)


def migrate_checkpoint(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Bring an older layout's checkpoint to :data:`LAYOUT`, in place; returns it."""
    layout = int(ckpt.get("mas_layout", 1))
    if layout >= LAYOUT:
        return ckpt
    if isinstance(ckpt.get("mas_config"), dict):
        ckpt["mas_config"] = _retarget(ckpt["mas_config"])
        if layout < 3:
            _keep_rows_first(ckpt["mas_config"])
    ckpt["mas_layout"], ckpt["mas_migrated_from"] = LAYOUT, layout
    return ckpt


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``, or a ``mas-export format=safetensors`` directory
    (:mod:`core.train.weights_file`); a missing, truncated or foreign file gets one sentence."""
    p = Path(path)
    if p.exists() and is_weights_dir(p):
        return migrate_checkpoint(load_weights_dir(p))
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
    return migrate_checkpoint(ckpt)


def checkpoint_config(ckpt: dict[str, Any], path: str | Path, task: str | None = None) -> dict[str, Any]:
    """The run config stored in a checkpoint by :class:`core.train.tasks.BaseTask`; checks the task if given."""
    cfg = ckpt.get("mas_config")
    if not isinstance(cfg, dict):
        raise InputError(f"checkpoint {path} was not written by mas-train (it has no stored config).")
    if task is not None and cfg.get("task") != task:
        raise InputError(f"checkpoint {path} is for task '{cfg.get('task')}', not '{task}'.")
    return cfg
