"""Checkpoints without pickle: weights in ``model.safetensors``, everything else in ``config.json``.

``mas-export format=safetensors`` writes a directory with the two files; :func:`load_weights_dir` reads it
back into the shape of a Lightning checkpoint (``state_dict``, ``mas_config``, ``mas_layout`` and the
datamodule's state under its class name), so ``mas-predict``, ``mas-eval`` and ``finetune.from=``
accept the directory (or its ``model.safetensors``) wherever they accept a ``.ckpt``.

The datamodule's state (class names, tokenizers) is JSON; the few tensors in it (a SentencePiece model
as bytes) are written as base64 with their dtype and shape.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import torch

from core.train.errors import InputError

__all__ = ["CONFIG_FILE", "FORMAT", "WEIGHTS_FILE", "datamodule_key", "is_weights_dir", "load_weights_dir",
           "save_weights_dir", "weights_dir_of"]

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
FORMAT = "mas-safetensors-1"


def datamodule_key(mas_config: dict[str, Any]) -> str:
    """Where Lightning keeps the datamodule's state in a checkpoint: under the class name."""
    return str((mas_config.get("data") or {}).get("_target_", "")).rsplit(".", 1)[-1]


def _to_json(obj: Any) -> Any:
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        return {"__tensor__": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "base64": base64.b64encode(t.numpy().tobytes()).decode("ascii")}
    if isinstance(obj, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            raw = bytearray(base64.b64decode(obj["base64"]))
            flat = torch.frombuffer(raw, dtype=getattr(torch, obj["__tensor__"])) if raw else torch.empty(0)
            return flat.reshape(obj["shape"]).clone()
        if "__bytes__" in obj:
            return base64.b64decode(obj["__bytes__"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def save_weights_dir(ckpt: dict[str, Any], out_dir: str | Path, *, weights: bool = True) -> list[Path]:
    """Write ``ckpt`` (a loaded mas-train checkpoint) as ``model.safetensors`` + ``config.json`` in ``out_dir``
    (only ``config.json`` with ``weights=False``: an ONNX export's labels and tokenizer)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ckpt["mas_config"]
    key = datamodule_key(cfg)
    # safetensors refuses tensors sharing storage (tied embeddings): each key gets its own copy
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt["state_dict"].items()} if weights else {}
    config = {"format": FORMAT, "mas_layout": ckpt.get("mas_layout"), "task": cfg.get("task"),
              "global_step": int(ckpt.get("global_step", 0)), "epoch": int(ckpt.get("epoch", 0)),
              "datamodule_key": key, "datamodule_state": _to_json(ckpt.get(key)), "mas_config": _to_json(cfg)}
    writers = [(out / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=1) + "\n"))]
    if weights:
        writers.insert(0, (out / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"})))
    for path, write in writers:
        tmp = path.with_name(path.name + ".tmp")  # a crash never leaves half a file under the real name
        write(tmp)
        os.chmod(tmp, 0o644)  # safetensors creates its file private; an export is meant to be shared
        os.replace(tmp, path)
    return [path for path, _ in writers]


def weights_dir_of(path: str | Path) -> Path | None:
    """The export directory ``path`` names (the directory, its ``model.safetensors`` or its ``config.json``)."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.name in (WEIGHTS_FILE, CONFIG_FILE) or p.suffix == ".safetensors":
        return p.parent
    return None


def is_weights_dir(path: str | Path) -> bool:
    return weights_dir_of(path) is not None


def load_weights_dir(path: str | Path) -> dict[str, Any]:
    """A Lightning-shaped checkpoint dict from an export directory; one sentence for anything unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = weights_dir_of(path)
    weights, config = d / WEIGHTS_FILE, d / CONFIG_FILE
    for f in (weights, config):
        if not f.is_file():
            raise InputError(f"{d} is not a mas-export safetensors directory ({f.name} is missing).")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{config} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "mas_config" not in meta:
        raise InputError(f"{config} was not written by mas-export format=safetensors.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{weights} is truncated or corrupt and cannot be read.") from exc
    ckpt = {"state_dict": state, "mas_config": _from_json(meta["mas_config"]), "mas_layout": meta.get("mas_layout"),
            "global_step": meta.get("global_step", 0), "epoch": meta.get("epoch", 0)}
    if meta.get("datamodule_state") is not None:
        ckpt[meta["datamodule_key"]] = _from_json(meta["datamodule_state"])
    return ckpt
