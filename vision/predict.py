"""``mas-predict`` for vision checkpoints: top-k labels for each input image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_paths(spec: Any) -> list[Path]:
    """Files named by ``input=`` (a file, a directory of images, or a list)."""
    if spec is None:
        raise InputError("mas-predict needs input=<image file, directory or list of files>.")
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    paths: list[Path] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"input file {p} does not exist.")
    if not paths:
        raise InputError(f"no image files found in {spec}.")
    return paths


def load_image(path: Path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Any PIL mode (L, RGB, RGBA, P, ...) and size -> ``(channels, H, W)`` in [0, 1]."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path} is not a readable image file.") from exc
    t = torch.from_numpy(arr)
    return t[None] if channels == 1 else t.permute(2, 0, 1)


@torch.no_grad()
def predict_images(*, module, datamodule, request: dict, out_dir: str) -> list[dict]:
    """Print the top-k classes with probabilities for each image; returns them too."""
    model = module.model
    channels = model.patch_embed.proj.in_channels
    classes = list(getattr(datamodule, "classes", None) or range(model.num_classes))
    k = max(1, min(int(request.get("top_k") or 3), len(classes)))
    results = []
    for path in image_paths(request.get("input")):
        x = datamodule.normalize(load_image(path, model.img_size, channels))[None]
        prob = model(x).softmax(-1)[0]
        top = prob.topk(k)
        preds = [(str(classes[i]), float(p)) for p, i in zip(top.values, top.indices)]
        print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in preds))
        results.append({"file": str(path), "top": preds})
    return results
