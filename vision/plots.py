"""Colour masks and overlays as PNG (PIL): predicted segmentation for people to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["palette", "save_mask", "save_overlay"]


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours; class 0 (background) is black, the rest spread over hues."""
    import colorsys

    cols = [(0, 0, 0)] + [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(1, num_classes - 1), 0.9, 1.0))
                          for i in range(num_classes - 1)]
    return np.array(cols, dtype=np.uint8)


def save_mask(mask: Tensor, path: str | Path, *, num_classes: int) -> Path:
    """Class-index mask ``(H, W)`` as a palette PNG (pixel values are the class indices)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.to(torch.uint8).cpu().numpy(), mode="P")
    im.putpalette(palette(max(num_classes, 2)).flatten().tolist())
    im.save(path)
    return path


def save_overlay(image: Tensor, mask: Tensor, path: str | Path, *, num_classes: int, alpha: float = 0.5) -> Path:
    """Image ``(C, H, W)`` in [0, 1] with non-background classes of ``mask (H, W)`` blended in colour."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = image.detach().float().clamp(0, 1).cpu()
    img = img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]
    rgb = (img.permute(1, 2, 0).numpy() * 255).astype(np.float32)  # (H, W, 3)
    m = mask.cpu().numpy().astype(np.int64)
    cols = palette(max(num_classes, 2))[np.clip(m, 0, max(num_classes, 2) - 1)].astype(np.float32)
    fg = (m > 0) & (m < num_classes)
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * cols[fg]
    Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8), mode="RGB").save(path)
    return path
