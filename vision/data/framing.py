"""A person's digit picture framed the way the embedded 8x8 digits are framed.

scikit-learn's digits (UCI optdigits) are 32x32 binary scans, normalised so that the digit fills the
height, light ink on dark, counted into 4x4 blocks: 8x8 images of values in [0, 1]. A picture typed
or drawn by a person has any size, either polarity, margins and stroke width, so
:func:`frame_digit` repeats those steps on it:

1. greyscale in [0, 1], ink made light on dark (the background is the median of the border);
2. contrast stretched from the background level to the ink level;
3. cropped to the ink's bounding box (small crops resampled to 128 pixels first, on the grey levels,
   so the anti-aliased edges of a small typed digit keep its counters open when binarised) and scaled,
   aspect preserved, to fill 32 pixels of height
   (or of width, for wide content), centred;
4. binarised, strokes thickened or thinned to the width the scans have (about 4.5 of 32 pixels,
   set at the picture's own resolution before scaling, so thin pen lines survive);
5. averaged over 4x4 blocks: 8x8.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["STROKE_WIDTH", "frame_digit", "ink_light_on_dark", "stroke_width"]

GRID, BLOCK = 32, 4  # optdigits: 32x32 bitmaps, 4x4 blocks
STROKE_WIDTH = 4.5  # ink pixels across a stroke at 32x32: best of 2.5, 3.5, 4.5 on bench/person_digits.py (seed 0)
_DISK = ndimage.generate_binary_structure(2, 1)


def ink_light_on_dark(grey: np.ndarray) -> np.ndarray:
    """``grey`` (H, W) in [0, 1] with light ink on a dark background, stretched to [0, 1]: a light
    background (median of the border pixels above 0.5) means dark ink, which is inverted."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
        border = 1.0 - border
    low, high = float(np.median(border)), float(grey.max())
    if high - low < 0.1:  # no contrast: nothing drawn
        return np.zeros_like(grey)
    return np.clip((grey - low) / (high - low), 0.0, 1.0)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width of a binary image: area over half the perimeter (a stroke of length L and
    width w has area L*w and a boundary about 2L long)."""
    area = int(ink.sum())
    if area == 0:
        return 0.0
    edge = int((ink & ~ndimage.binary_erosion(ink, _DISK, border_value=0)).sum())
    return 2.0 * area / max(edge, 1)


def _bounding_box_of(values: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """``values`` cropped to the bounding box of the boolean ``ink``."""
    rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
    return values[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _bounding_box(ink: np.ndarray) -> np.ndarray:
    return _bounding_box_of(ink, ink)


def _resize_long_side(img: np.ndarray, longest: int, resample: int) -> np.ndarray:
    """``img`` (H, W) as float32 resized, aspect preserved, so its long side is ``longest`` pixels."""
    h, w = img.shape
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize(size, resample), dtype=np.float32)


def _fit_in_grid(crop: np.ndarray) -> np.ndarray:
    """A cropped binary image scaled, aspect preserved, to fill ``GRID`` pixels of height (or width), centred."""
    resized = _resize_long_side(crop, GRID, Image.BILINEAR)
    out = np.zeros((GRID, GRID), dtype=bool)
    top, left = (GRID - resized.shape[0]) // 2, (GRID - resized.shape[1]) // 2
    out[top: top + resized.shape[0], left: left + resized.shape[1]] = resized > 0.5
    return out


def _normalise_strokes(ink: np.ndarray, target: float, max_rings: int = 48) -> np.ndarray:
    """Dilate or erode a binary image, one pixel ring at a time, until its stroke width is nearest ``target``."""
    best, best_gap = ink, abs(stroke_width(ink) - target)
    grow = stroke_width(ink) < target
    current = ink
    for _ in range(max_rings):
        current = ndimage.binary_dilation(current, _DISK) if grow else ndimage.binary_erosion(current, _DISK)
        if not current.any():
            break
        gap = abs(stroke_width(current) - target)
        if gap >= best_gap:
            break
        best, best_gap = current, gap
    return best


def _shrink(grey: np.ndarray, longest: int = 256) -> np.ndarray:
    """Large pictures averaged down to ``longest`` pixels on their long side: the framing needs no more."""
    return grey if max(grey.shape) <= longest else _resize_long_side(grey, longest, Image.BOX)


def _ink_at_working_size(light: np.ndarray, working: int = 128) -> np.ndarray:
    """Binary ink of ``light`` (light-on-dark grey in [0, 1]) cropped to its bounding box; a crop whose
    long side is under ``working`` pixels is resampled (bilinear, on the grey levels) to that size first:
    thresholding a 20-pixel bold "8" at its own size closes its loops, at 128 pixels they stay open."""
    crop = np.pad(_bounding_box_of(light, light > 0.5), 1)  # a ring of paper: edges interpolate to it
    if max(crop.shape) < working:
        crop = _resize_long_side(crop, working, Image.BILINEAR)
    return _bounding_box(crop > 0.5)


def frame_digit(grey: np.ndarray, *, stroke: float = STROKE_WIDTH) -> np.ndarray | None:
    """``grey`` (H, W) in [0, 1], any size and polarity -> (8, 8) in [0, 1] framed like the embedded
    digits; ``None`` when the picture holds no ink. Strokes are set to ``stroke`` (at 32x32) before the
    picture is scaled down, so thin pen lines survive the scaling."""
    light = ink_light_on_dark(_shrink(np.asarray(grey, dtype=np.float32)))
    if not (light > 0.5).any():
        return None
    crop = np.pad(_ink_at_working_size(light), 2)  # room to thicken
    crop = _bounding_box(_normalise_strokes(crop, stroke * max(crop.shape) / GRID))
    framed = _fit_in_grid(crop)
    return framed.reshape(GRID // BLOCK, BLOCK, GRID // BLOCK, BLOCK).mean(axis=(1, 3)).astype(np.float32)
