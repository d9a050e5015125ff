"""Embedded segmentation data: canvases of scikit-learn digits with per-pixel class masks (offline).

Digit canvases: each ``canvas x canvas`` image holds 1-4 scikit-learn digits pasted at random
positions and scales (10-16 px, boxes not overlapping, so every digit is fully visible); the mask
gives every pixel its class, 0 = background and ``d + 1`` for digit ``d`` (11 classes). A pixel
belongs to a digit where the upscaled stroke intensity exceeds ``threshold``. The source digits of the train, val and test
canvases come from disjoint parts of scikit-learn's set (split seed 0), so test canvases show
handwriting never seen in training. Canvases are built once (seeded) and cached.
"""

from __future__ import annotations

import math

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from core.train.data import SplitDataModule, cached_tensors, fixed_split
from core.train.errors import InputError
from vision.data.digits import load_digits_tensors

__all__ = ["DigitCanvasDataModule", "make_canvases"]

SEG_DIGIT_CLASSES = ["background"] + [str(i) for i in range(10)]
SPLIT_ORDER = ("train", "val", "test")


def make_canvases(digits: Tensor, labels: Tensor, *, n: int, canvas: int = 32, max_digits: int = 4,
                  scale: tuple[int, int] = (10, 16), threshold: float = 0.25, max_tries: int = 20, seed: int = 0,
                  progress=None) -> dict[str, Tensor]:
    """``n`` canvases ``x (n, 1, canvas, canvas)`` in [0, 1] and masks ``y (n, canvas, canvas)`` int64.

    ``digits (M, 1, 8, 8)`` in [0, 1] are resized to a random side in ``scale`` (bilinear) and pasted
    (pixel-wise maximum) at a random position whose box does not overlap an earlier digit's (a digit
    with no free spot after ``max_tries`` draws is left out); ``progress(advance)`` is called per canvas.
    """
    g = torch.Generator().manual_seed(seed)
    xs = torch.zeros(n, 1, canvas, canvas)
    ys = torch.zeros(n, canvas, canvas, dtype=torch.long)
    for i in range(n):
        boxes: list[tuple[int, int, int]] = []
        for _ in range(int(torch.randint(1, max_digits + 1, (1,), generator=g))):
            j = int(torch.randint(len(digits), (1,), generator=g))
            s = int(torch.randint(scale[0], scale[1] + 1, (1,), generator=g))
            for _try in range(max_tries):  # a free spot: boxes may touch but not overlap
                r, c = (int(v) for v in torch.randint(0, canvas - s + 1, (2,), generator=g))
                if all(r + s <= r2 or r2 + s2 <= r or c + s <= c2 or c2 + s2 <= c for r2, c2, s2 in boxes):
                    break
            else:
                if boxes:
                    continue
            boxes.append((r, c, s))
            patch = F.interpolate(digits[j][None], size=(s, s), mode="bilinear", align_corners=False)[0, 0]
            patch = patch.clamp(0, 1)
            ink = patch > threshold
            region = xs[i, 0, r:r + s, c:c + s]
            xs[i, 0, r:r + s, c:c + s] = torch.where(ink, torch.maximum(region, patch), region)
            ys[i, r:r + s, c:c + s][ink] = int(labels[j]) + 1
        if progress is not None:
            progress(1)
    return {"x": xs, "y": ys}


def _build_canvases(sizes: dict[str, int], canvas: int, max_digits: int,
                    seeds: dict[str, int] | None = None) -> dict[str, Tensor]:
    from rich.progress import Progress

    d = load_digits_tensors()
    idx = fixed_split(len(d["y"]), fractions=(0.7, 0.1, 0.2), seed=0)
    out: dict[str, Tensor] = {}
    with Progress(transient=True) as prog:
        task = prog.add_task("building digit canvases", total=sum(sizes.values()))
        for split, n in sizes.items():
            sub = idx[split]
            seed = (seeds or {}).get(split, 100 + list(SPLIT_ORDER).index(split))
            data = make_canvases(d["x"][sub], d["y"][sub], n=n, canvas=canvas, max_digits=max_digits, seed=seed,
                                 progress=lambda a: prog.advance(task, a))
            out[f"{split}_x"], out[f"{split}_y"] = data["x"], data["y"]
    return out


class DigitCanvasDataModule(SplitDataModule):
    """Embedded digit canvases with per-pixel masks (11 classes), fixed seeded splits, cached."""

    classes = SEG_DIGIT_CLASSES
    num_classes = len(SEG_DIGIT_CLASSES)
    mean, std = 0.1, 0.25
    in_chans = 1

    def __init__(self, *, cache_dir: str, batch_size: int = 32, num_workers: int = 0, canvas: int = 32,
                 max_digits: int = 4, num_train: int = 4000, num_val: int = 500, num_test: int = 500,
                 size_ratio: float = 1.0) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.canvas, self.max_digits = canvas, max_digits
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        side = canvas * float(size_ratio)
        if not (size_ratio > 0 and side == round(side)):
            raise InputError(f"data.size_ratio={size_ratio} must make the {canvas}-pixel canvas a whole number "
                             f"of pixels.")
        self.size_ratio, self.test_canvas = float(size_ratio), int(side)

    @property
    def img_size(self) -> int:
        return self.canvas

    def _path(self) -> Path:
        n = "-".join(str(v) for v in self.sizes.values())
        return self.cache_dir / "vision" / f"digit_canvases_v2_{self.canvas}_{self.max_digits}_{n}.pt"

    def _data(self) -> dict:
        return cached_tensors(self._path(), lambda: _build_canvases(self.sizes, self.canvas, self.max_digits))

    def _test_data(self) -> dict:
        """The test split at ``size_ratio``: canvases ``r`` times wider and taller holding up to ``r**2`` times
        as many digits at the same digit scale (more tokens, same objects), drawn from the same test digits;
        ``ceil(n / r**2)`` of them for a test split of ``n``, so about as many pixels and digits as the test split
        (every size costs about one test pass)."""
        digits = round(self.max_digits * self.size_ratio**2)
        count = math.ceil(self.sizes["test"] / self.size_ratio**2)
        path = self.cache_dir / "vision" / f"digit_canvases_v2_test_{self.test_canvas}_{digits}_{count}.pt"
        return cached_tensors(path, lambda: _build_canvases({"test": count}, self.test_canvas, digits))

    def prepare_data(self) -> None:
        self._data()
        if self.size_ratio != 1.0:
            self._test_data()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.splits:
            return
        data = self._data()
        if self.size_ratio != 1.0:
            data = {**data, **self._test_data()}
        self.splits = {s: (self.normalize(data[f"{s}_x"]), data[f"{s}_y"]) for s in self.sizes}

    def normalize(self, x: Tensor) -> Tensor:
        """Pixels in [0, 1] to the model's input scale (used by mas-predict too)."""
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        x, y = self.splits[split]
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)


