"""Embedded vision data: scikit-learn's handwritten digits (real 8x8 scans, shipped with sklearn)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from core.data import cached_tensors, fixed_split

__all__ = ["DigitsDataModule", "load_digits_tensors"]

DIGIT_CLASSES = [str(i) for i in range(10)]


def load_digits_tensors() -> dict[str, Tensor]:
    """All 1,797 digits as ``x (N, 1, 8, 8)`` in [0, 1] and ``y (N,)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    return {"x": x, "y": torch.from_numpy(d.target.astype(np.int64))}


class ShiftAugment(Dataset):
    """Random translation by up to ``max_shift`` pixels (zero fill): digits stay digits."""

    def __init__(self, x: Tensor, y: Tensor, max_shift: int = 1, seed: int = 0) -> None:
        self.x, self.y, self.s = x, y, max_shift

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        img = self.x[i]
        dy, dx = torch.randint(-self.s, self.s + 1, (2,)).tolist()
        padded = torch.nn.functional.pad(img, (self.s, self.s, self.s, self.s))
        h, w = img.shape[-2:]
        return padded[:, self.s + dy: self.s + dy + h, self.s + dx: self.s + dx + w], self.y[i]


class DigitsDataModule(L.LightningDataModule):
    """Fixed 70/10/20 train/val/test split (split seed 0, independent of the run seed)."""

    classes = DIGIT_CLASSES
    mean, std = 0.3, 0.4

    def __init__(self, cache_dir: str, batch_size: int = 64, num_workers: int = 0, augment: bool = True) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.num_workers, self.augment = batch_size, num_workers, augment
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    def prepare_data(self) -> None:
        cached_tensors(self.cache_dir / "vision" / "digits.pt", load_digits_tensors)

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.splits:
            return
        data = cached_tensors(self.cache_dir / "vision" / "digits.pt", load_digits_tensors)
        x = (data["x"] - self.mean) / self.std
        idx = fixed_split(len(x), fractions=(0.7, 0.1, 0.2), seed=0)
        self.splits = {k: (x[i], data["y"][i]) for k, i in idx.items()}

    def normalize(self, x: Tensor) -> Tensor:
        """Map pixels in [0, 1] to the model's input scale (used by mas-predict)."""
        return (x - self.mean) / self.std

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        x, y = self.splits[split]
        ds = ShiftAugment(x, y) if train and self.augment else TensorDataset(x, y)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
