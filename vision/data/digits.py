"""Embedded vision data: scikit-learn's handwritten digits (real 8x8 scans, shipped with sklearn)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from PIL import Image

from core.train.data import SplitDataModule, cached_tensors, fixed_split
from core.train.errors import InputError
from vision.data.framing import frame_digit

__all__ = ["DigitsDataModule", "load_digits_tensors"]

DIGIT_CLASSES = [str(i) for i in range(10)]


def load_digits_tensors() -> dict[str, Tensor]:
    """All 1,797 digits as ``x (N, 1, 8, 8)`` in [0, 1] and ``y (N,)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    return {"x": x, "y": torch.from_numpy(d.target.astype(np.int64))}


class DigitAugment(Dataset):
    """Training augmentation for centred 8x8 digits.

    ``shift``: random translation by up to one pixel (zero fill). ``affine``: a small random affine map
    (rotation up to ``degrees``, scale in ``1 +- scale``, translation up to ``translate`` pixels),
    bilinear resampling; digits stay centred digits, which whole-pixel shifts of an 8x8 image do not.
    ``person``: the affine map plus what differs between one person's pen and another's: an elastic
    warp (a smooth random displacement of up to ``elastic`` pixels), stroke width (the ink dilated or
    eroded by a quarter pixel, each a third of the time) and contrast (ink level scaled by 0.6-1.2).
    """

    def __init__(self, x: Tensor, y: Tensor, *, mode: str = "affine", degrees: float = 10.0, scale: float = 0.1,
                 translate: float = 0.5, elastic: float = 0.6, background: float = 0.0) -> None:
        self.x, self.y, self.mode = x, y, mode
        self.degrees, self.scale, self.translate, self.background = degrees, scale, translate, background
        self.elastic = elastic
        self.ink_max = float(x.max()) - background if len(x) else 1.0

    def __len__(self) -> int:
        return len(self.y)

    def _grid(self, h: int, w: int) -> Tensor:
        u = torch.rand(4) * 2 - 1  # uniform in [-1, 1]
        a = math.radians(self.degrees) * float(u[0])
        s = 1 + self.scale * float(u[1])
        theta = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, float(u[2]) * self.translate * 2 / w],
                              [math.sin(a) / s, math.cos(a) / s, float(u[3]) * self.translate * 2 / h]])
        grid = F.affine_grid(theta[None], [1, 1, h, w], align_corners=False)  # (1, H, W, 2)
        if self.mode == "person":  # a 3x3 field of random offsets, smoothly interpolated: an elastic warp
            coarse = (torch.rand(1, 2, 3, 3) * 2 - 1) * self.elastic * 2 / torch.tensor([w, h]).view(1, 2, 1, 1)
            grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        return grid

    @staticmethod
    def _pen(ink: Tensor) -> Tensor:
        """Stroke width: at 4x resolution, dilate or erode by one pixel (a quarter of an 8x8 pixel)."""
        choice = int(torch.randint(3, ()))
        if choice == 2:
            return ink
        big = F.interpolate(ink[None], scale_factor=4, mode="bilinear", align_corners=False)
        big = F.max_pool2d(big, 3, 1, 1) if choice == 0 else -F.max_pool2d(-big, 3, 1, 1)
        return F.avg_pool2d(big, 4)[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        img = self.x[i]  # (1, H, W)
        h, w = img.shape[-2:]
        if self.mode == "shift":
            dy, dx = torch.randint(-1, 2, (2,)).tolist()
            padded = F.pad(img, (1, 1, 1, 1), value=self.background)
            return padded[:, 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w], self.y[i]
        ink = img - self.background  # zero where there is no ink: the warp's zero fill is paper
        ink = F.grid_sample(ink[None], self._grid(h, w), mode="bilinear", padding_mode="zeros",
                            align_corners=False)[0]
        if self.mode == "person":
            ink = (self._pen(ink) * float(torch.empty(()).uniform_(0.6, 1.2))).clamp(0.0, self.ink_max)
        return ink + self.background, self.y[i]


class DigitsDataModule(SplitDataModule):
    """70/10/20 train/val/test split: the test split is fixed (split seed 0); with ``split_seed`` the
    train/val split is redrawn per run seed (repeated hold-out: 1,797 images are few), 0 keeping the base one.

    ``size_ratio = r`` resamples the test images (bilinear) to ``8r x 8r`` pixels: the same image at a
    higher resolution, so a ViT sees more patches (the resolution protocol of RoPE-ViT).

    ``typed = k`` adds ``k`` renderings of each digit in each training font
    (:mod:`vision.data.typed`, ``80 k`` images) to the train split only, so printed digits are seen in
    training; val and test stay the scans.
    """

    classes = DIGIT_CLASSES
    mean, std = 0.3, 0.4

    def __init__(self, cache_dir: str, batch_size: int = 64, num_workers: int = 0,
                 augment: str | bool = "affine", split_seed: int | None = None, size_ratio: float = 1.0,
                 typed: int = 0) -> None:
        super().__init__()
        if not (isinstance(typed, int) and typed >= 0):
            raise InputError(f"data.typed={typed} must be a whole number of renderings per font and digit (0: none).")
        self.typed = typed
        side = 8 * float(size_ratio)
        if not (size_ratio > 0 and side == round(side)):
            raise InputError(f"data.size_ratio={size_ratio} must make the 8-pixel images a whole number of pixels.")
        self.test_side = int(side)
        self.split_seed = split_seed
        self.split_varies_with_seed = split_seed is not None
        if augment is True:
            augment = "shift"
        if augment not in (False, None, "none", "shift", "affine", "person"):
            raise ValueError(f"data.augment must be none, shift, affine or person, not '{augment}'.")
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.augment = augment if augment not in (False, None) else "none"
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    def prepare_data(self) -> None:
        cached_tensors(self.cache_dir / "vision" / "digits.pt", load_digits_tensors)
        self._typed_digits()

    def _typed_digits(self) -> dict[str, Tensor] | None:
        if not self.typed:
            return None
        from vision.data.typed import render_typed_digits

        return cached_tensors(self.cache_dir / "vision" / f"typed_digits-{self.typed}.pt",
                              lambda: render_typed_digits(self.typed))

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.splits:
            return
        data = cached_tensors(self.cache_dir / "vision" / "digits.pt", load_digits_tensors)
        x = (data["x"] - self.mean) / self.std
        idx = fixed_split(len(x), fractions=(0.7, 0.1, 0.2), seed=0, holdout_seed=self.split_seed)
        self.splits = {k: (x[i], data["y"][i]) for k, i in idx.items()}
        typed = self._typed_digits()
        if typed is not None:
            tx, ty = self.splits["train"]
            self.splits["train"] = (torch.cat([tx, self.normalize(typed["x"])]), torch.cat([ty, typed["y"]]))
        if self.test_side != x.shape[-1]:
            tx, ty = self.splits["test"]
            self.splits["test"] = (F.interpolate(tx, size=(self.test_side,) * 2, mode="bilinear",
                                                 align_corners=False), ty)

    def normalize(self, x: Tensor) -> Tensor:
        """Map pixels in [0, 1] to the model's input scale (used by mas-predict)."""
        return (x - self.mean) / self.std

    @staticmethod
    def frame_picture(im: Image.Image) -> Tensor:
        """A person's picture of a digit (any size, either polarity) as ``(1, 8, 8)`` in [0, 1], framed
        like the scans (:func:`vision.data.framing.frame_digit`); mas-predict calls it."""
        framed = frame_digit(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
        if framed is None:
            raise InputError("the picture holds no digit: no ink stands out from its background.")
        return torch.from_numpy(framed)[None]

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        x, y = self.splits[split]
        if train and self.augment != "none":
            ds = DigitAugment(x, y, mode=self.augment, background=self.normalize(torch.tensor(0.0)).item())
        else:
            ds = TensorDataset(x, y)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

