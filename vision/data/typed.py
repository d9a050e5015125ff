"""Typed digits for training: the ten digits rendered in fonts that ship with pip packages, framed the
way :mod:`vision.data.framing` frames a person's picture, so the model has seen printed shapes (the
1,797 scans are all handwriting: a serif "1" or an open "4" is new to it).

Fonts: Pillow's built-in Aileron and the DejaVu styles that ship with matplotlib. Two whole families
that also ship with matplotlib, STIX and Computer Modern, are never used here, so a test on them
(``bench/person_digits.py`` reports ``typed-heldout``) measures fonts the model has not seen. Each
rendering varies the point size, a small rotation, slant and width, and where the digit sits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from vision.data.framing import frame_digit

__all__ = ["HELD_OUT_FAMILIES", "TRAIN_FONTS", "font", "render_typed_digits"]

AILERON = "Aileron"  # Pillow's built-in scalable font (ImageFont.load_default)
TRAIN_FONTS = (AILERON, "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
               "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
               "DejaVuSerif-BoldItalic.ttf")
HELD_OUT_FAMILIES = ("STIX", "cm")  # matplotlib's other fonts: file names start with these


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """``name`` (a file in matplotlib's font folder, or ``Aileron``) at ``size`` pixels."""
    if name == AILERON:
        return ImageFont.load_default(size)
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def _render(digit: int, face: str, rng: np.random.RandomState) -> np.ndarray:
    """One light-on-dark rendering in [0, 1]: 20-90 px type, rotated up to 6 degrees, slanted up to
    0.2 and stretched 0.85-1.2 in width, somewhere on a canvas with room around it."""
    size = int(rng.randint(20, 91))
    f = font(face, size)
    left, top, right, bottom = f.getbbox(str(digit))
    w, h = right - left, bottom - top
    pad = size // 2
    im = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    ImageDraw.Draw(im).text((pad - left, pad - top), str(digit), fill=255, font=f)
    slant, stretch = rng.uniform(-0.2, 0.2), rng.uniform(0.85, 1.2)
    a = math.radians(rng.uniform(-6, 6))
    # inverse map (output -> input) about the centre: rotation, then slant and width stretch
    cx, cy = im.width / 2, im.height / 2
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[1 / stretch, slant], [0, 1]])
    offset = np.array([cx, cy]) - m @ np.array([cx, cy])
    im = im.transform(im.size, Image.AFFINE, (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1]),
                      resample=Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def render_typed_digits(per_font: int, seed: int = 0, fonts: tuple[str, ...] = TRAIN_FONTS) -> dict[str, Tensor]:
    """``per_font`` renderings of each digit in each of ``fonts``, framed as 8x8 images in [0, 1]:
    ``x (N, 1, 8, 8)``, ``y (N,)`` with ``N = 10 * len(fonts) * per_font``."""
    rng = np.random.RandomState(seed)
    xs, ys = [], []
    for face in fonts:
        for digit in range(10):
            for _ in range(per_font):
                framed = frame_digit(_render(digit, face, rng))
                assert framed is not None, f"{face} rendered no ink for {digit}"  # every font here has digits
                xs.append(framed)
                ys.append(digit)
    return {"x": torch.from_numpy(np.stack(xs))[:, None], "y": torch.tensor(ys, dtype=torch.int64)}
