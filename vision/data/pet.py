"""Oxford-IIIT Pet trimap segmentation read from disk through torchvision (no download at run time).

Layout under ``root``: ``oxford-iiit-pet/images/*.jpg``, ``oxford-iiit-pet/annotations/trimaps/*.png``,
``oxford-iiit-pet/annotations/{trainval,test}.txt``. Trimap values map to 3 classes:
2 -> 0 background, 1 -> 1 pet, 3 -> 2 border. Validation is a fixed 10% of ``trainval`` (split seed 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from core.train.data import SplitDataModule, fixed_split
from core.train.errors import InputError

__all__ = ["PetSegDataModule", "PetTrimaps", "image_and_mask"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_TRIMAP_TO_CLASS = np.array([255, 1, 0, 2] + [255] * 252, dtype=np.int64)  # 0 and >3 are not trimap values


class PetTrimaps(Dataset):
    """torchvision's ``OxfordIIITPet`` (segmentation) resized to ``img_size``; optional random flip."""

    def __init__(self, root: str | Path, split: str, *, img_size: int, train: bool = False) -> None:
        from torchvision.datasets import OxfordIIITPet

        self.ds = OxfordIIITPet(str(root), split=split, target_types="segmentation", download=False)
        self.img_size, self.train = img_size, train

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image, trimap = self.ds[i]
        return image_and_mask(image, trimap, self.img_size, lut=_TRIMAP_TO_CLASS,
                              flip=self.train and bool(torch.rand(()) < 0.5))


def image_and_mask(image: Image.Image, mask: Image.Image, img_size: int, *, lut: np.ndarray,
                   flip: bool = False) -> tuple[Tensor, Tensor]:
    """An RGB image and its mask at ``img_size``: pixels ``(3, H, W)`` in [0, 1] (bilinear) and classes
    ``(H, W)`` int64 (nearest, so no class is blended; ``lut[v]`` is the class of mask value ``v``)."""
    s = (img_size, img_size)
    x = torch.from_numpy(np.asarray(image.resize(s[::-1], Image.BILINEAR), dtype=np.float32) / 255.0)
    y = torch.from_numpy(lut[np.asarray(mask.resize(s[::-1], Image.NEAREST), dtype=np.uint8)])
    x = x.permute(2, 0, 1)  # (3, H, W)
    return (x.flip(-1), y.flip(-1)) if flip else (x, y)


class PetSegDataModule(SplitDataModule):
    """Oxford-IIIT Pet trimaps: train = 90% of ``trainval``, val = the other 10%, test = ``test``."""

    classes = ["background", "pet", "border"]
    num_classes = 3
    in_chans = 3

    def __init__(self, *, root: str, img_size: int = 128, batch_size: int = 32, num_workers: int = 0,
                 val_fraction: float = 0.1) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.img_size, self.batch_size, self.num_workers = img_size, batch_size, num_workers
        self.val_fraction = val_fraction
        self.mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD)[:, None, None]
        self.sets: dict[str, Dataset] = {}

    def _check(self) -> None:
        base = self.root / "oxford-iiit-pet"
        for need in (base / "images", base / "annotations" / "trimaps", base / "annotations" / "trainval.txt"):
            if not need.exists():
                raise InputError(f"Oxford-IIIT Pet not found: {need} is missing (set data.root to the folder "
                                 "holding oxford-iiit-pet/).")

    def prepare_data(self) -> None:
        self._check()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        self._check()
        train = PetTrimaps(self.root, "trainval", img_size=self.img_size, train=True)
        plain = PetTrimaps(self.root, "trainval", img_size=self.img_size)
        f = self.val_fraction
        idx = fixed_split(len(train), fractions=(1 - f, f, 0.0), seed=0)
        self.sets = {"train": Subset(train, idx["train"].tolist()), "val": Subset(plain, idx["val"].tolist())}
        if (self.root / "oxford-iiit-pet" / "annotations" / "test.txt").is_file():
            self.sets["test"] = PetTrimaps(self.root, "test", img_size=self.img_size)
        else:
            self.sets["test"] = self.sets["val"]

    def normalize(self, x: Tensor) -> Tensor:
        """Pixels in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``, to ImageNet-normalised input."""
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          collate_fn=self._collate)

    def _collate(self, items: list[Any]) -> tuple[Tensor, Tensor]:
        x = torch.stack([a for a, _ in items])
        y = torch.stack([b for _, b in items])
        return self.normalize(x), y

