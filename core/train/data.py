"""Data helpers shared by the domains: fixed splits and the on-disk cache of embedded datasets."""

from __future__ import annotations

import abc
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["SplitDataModule", "cached_tensors", "fixed_split", "lengths_at_ratio", "main_test_loader"]


def fixed_split(n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                holdout_seed: int | None = None) -> dict[str, np.ndarray]:
    """Deterministic train/val/test index split of ``n`` items (the split seed is not the run seed).

    With ``holdout_seed`` (repeated hold-out), the test items stay those of ``seed`` and the rest is
    redrawn into train/val by ``holdout_seed``; ``0`` keeps the base split.
    """
    perm = np.random.RandomState(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    rest = perm[:n_train + n_val]
    if holdout_seed:
        rest = np.random.RandomState(holdout_seed).permutation(rest)
    return {"train": rest[:n_train], "val": rest[n_train:], "test": perm[n_train + n_val:]}


def lengths_at_ratio(lengths: tuple[int, int], ratio: float) -> tuple[int, int]:
    """Inclusive lengths of a test set at ``ratio`` times the training lengths ``(shortest, longest)``:
    ``((ratio - 1/2) L, ratio L]`` with ``L`` the longest, never below the shortest. The
    length-extrapolation test sets of every domain use this rule for ``ratio > 1`` (at ``ratio = 1``
    they are the recipe's own test split)."""
    lo, top = int(lengths[0]), int(lengths[1])
    return max(lo, math.floor((ratio - 0.5) * top) + 1), max(lo, math.floor(ratio * top))


def cached_tensors(path: str | Path, build: Callable[[], dict], *, version: int = 1) -> dict:
    """Load ``path`` if it exists (and has ``version``), else ``build()`` it and save atomically.

    Safe when several processes (DDP ranks, parallel tests) build the same file: each writes a
    temporary file and renames it, so readers never see half a file.
    """
    path = Path(path).expanduser()
    if path.is_file():
        try:
            data = torch.load(path, weights_only=True)
            if isinstance(data, dict) and data.get("__version__") == version:
                return data
        except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt
            pass
    data = dict(build())
    data["__version__"] = version
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(data, tmp)
    os.replace(tmp, path)
    return data


class SplitDataModule(L.LightningDataModule, abc.ABC):
    """A datamodule with fixed ``train``/``val``/``test`` splits: subclasses implement
    ``_loader(split, train)`` once; the three Lightning hooks come from here.

    ``test_subsets`` names extra test sets (kinds of item, typed variants of the inputs), loaded as
    ``_loader("test_<name>")`` after the main test split; the tasks report each under its own name
    (``test/acc_<name>``), so the headline ``test/...`` stays that of the main split.
    """

    test_subsets: list[str] = []

    @abc.abstractmethod
    def _loader(self, split: str, train: bool = False) -> DataLoader:
        """The loader of ``split``; every datamodule implements it."""

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        if not self.test_subsets:
            return self._loader("test")
        return [self._loader("test")] + [self._loader(f"test_{name}") for name in self.test_subsets]


def main_test_loader(datamodule: L.LightningDataModule) -> DataLoader:
    """The main test split's loader, whether or not the datamodule adds test subsets."""
    loaders = datamodule.test_dataloader()
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders
