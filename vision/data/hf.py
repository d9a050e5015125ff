"""Images from Hugging Face datasets on disk: ViT classification and semantic segmentation.

The splits and columns come from :func:`core.train.hf_source.open_splits`; this module decodes a row's
image (and mask) with PIL and feeds the existing datamodules their usual items, so transforms, batching
and checkpoint state are theirs:

* classification: ``(PIL image, class index)`` items for :class:`vision.data.folders.ImageClassDataModule`
  (timm's training augmentation, ImageNet normalisation, class names in the checkpoint);
* segmentation: ``(pixels (3, H, W), classes (H, W))`` items for :class:`vision.data.pet.PetSegDataModule`'s
  loaders; mask pixel values are class indices (``ignore_index`` pixels count nowhere).

An image value is what an ``Image(decode=False)`` feature holds (``{"bytes", "path"}``; an Image feature
is read undecoded), encoded bytes, a file path, or a pixel array (``(H, W)`` or ``(H, W, C)`` uint8).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from core.train.errors import ConfigError, InputError
from core.train.hf_source import HFSplit, class_names, label_indices, media_source, open_splits
from vision.data.folders import ImageClassDataModule
from vision.data.pet import PetSegDataModule, image_and_mask

__all__ = ["HFImageClassDataModule", "HFSegDataModule", "row_image"]


def row_image(split: HFSplit, value: Any, i: int, role: str = "image") -> Image.Image:
    """Row ``i``'s image (or mask) column value as a loaded PIL image, in the file's own mode."""
    src = media_source(value, split.root)
    try:
        if isinstance(src, (bytes, str)):
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
                im.load()
                return im
        if value is not None and not isinstance(value, dict):
            return Image.fromarray(np.asarray(value, dtype=np.uint8))
    except (UnidentifiedImageError, OSError, TypeError, ValueError) as exc:
        raise InputError(f"row {i} of {split.where(role)} is not a readable image ({type(exc).__name__}).") from exc
    raise InputError(f"row {i} of {split.where(role)} has neither image bytes, a file path nor pixels.")


class _LabelledImages(Dataset):
    """A split's rows as ``(PIL image, class index)``; ``classes`` as torchvision's folder datasets have them."""

    def __init__(self, split: HFSplit, classes: list[str]) -> None:
        self.split, self.classes = split, classes
        self.labels = label_indices(split, classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return row_image(self.split, self.split.record(i)["image"], i), self.labels[i]


class HFImageClassDataModule(ImageClassDataModule):
    """Image classification on a Hugging Face dataset saved on disk (``save_to_disk`` folder or parquet).

    The classes are the label column's (a ClassLabel's names, else its sorted values); a checkpoint's
    classes win when one is loaded.

    Args:
        path, splits, val_fraction, split_seed, cache_dir: see :func:`core.train.hf_source.open_splits`.
        columns: ``image`` and ``label``.
        the rest: as :class:`vision.data.folders.ImageClassDataModule`.
    """

    def __init__(self, *, path: str, splits: dict[str, str | None], columns: dict[str, str | None],
                 val_fraction: float = 0.05, split_seed: int = 0, cache_dir: str | None = None, **kw) -> None:
        super().__init__(dataset="folder", root=path, val_fraction=val_fraction, **kw)
        self.path, self.splits, self.columns = path, dict(splits), dict(columns)
        self.split_seed, self.cache_dir = split_seed, cache_dir

    def _raw(self) -> dict[str, Dataset]:
        opened = open_splits(self.path, splits=self.splits, columns=self.columns, required=("image", "label"),
                             val_fraction=self.val_fraction, split_seed=self.split_seed, cache_dir=self.cache_dir)
        classes = list(self.classes) or class_names(opened["train"])
        # the test split may be the validation split itself: one dataset, as ImageClassDataModule expects
        made: dict[int, Dataset] = {}
        return {role: made.setdefault(id(split), _LabelledImages(split, classes)) for role, split in opened.items()}


class _ImageMasks(Dataset):
    """A split's rows as ``(pixels (3, H, W) in [0, 1], classes (H, W) int64)`` at ``img_size``."""

    def __init__(self, split: HFSplit, *, img_size: int, lut: np.ndarray, num_classes: int, ignore_index: int,
                 train: bool) -> None:
        self.split, self.img_size, self.lut, self.train = split, img_size, lut, train
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        rec = self.split.record(i)
        image, mask = row_image(self.split, rec["image"], i), row_image(self.split, rec["mask"], i, "mask")
        if mask.mode not in ("L", "P", "1"):  # 8-bit class indices (the look-up table has 256 entries)
            raise InputError(f"row {i} of {self.split.where('mask')} is a {mask.mode} image; a mask holds one "
                             "class index per pixel (mode L or P).")
        if mask.size != image.size:
            raise InputError(f"row {i} of {self.split.where('mask')} is {mask.size} but its image is {image.size}.")
        x, y = image_and_mask(image.convert("RGB"), mask, self.img_size, lut=self.lut,
                              flip=self.train and bool(torch.rand(()) < 0.5))
        bad = (y >= self.num_classes) & (y != self.ignore_index)
        if bad.any():
            raise InputError(f"row {i} of {self.split.where('mask')} has class {int(y[bad].max())}, but "
                             f"data.num_classes={self.num_classes}.")
        return x, y


class HFSegDataModule(PetSegDataModule):
    """Semantic segmentation on a Hugging Face dataset saved on disk: an image column and a mask column
    whose pixel values are class indices.

    Args:
        path, splits, val_fraction, split_seed, cache_dir: see :func:`core.train.hf_source.open_splits`.
        columns: ``image`` and ``mask``.
        num_classes: classes counted by the model and metrics (mask values ``0..num_classes-1``).
        class_names: their names (default ``"0"``, ``"1"``, ...).
        ignore_index: mask value that counts nowhere (255, as the segmentation task's default).
        reduce_labels: mask value 0 is "other" and ignored, ``v`` is class ``v - 1`` (as ADE20K is stored).
    """

    def __init__(self, *, path: str, splits: dict[str, str | None], columns: dict[str, str | None],
                 num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = 255,
                 reduce_labels: bool = False, val_fraction: float = 0.1, split_seed: int = 0,
                 cache_dir: str | None = None, img_size: int = 128, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__(root=path, img_size=img_size, batch_size=batch_size, num_workers=num_workers,
                         val_fraction=val_fraction)
        names = [str(c) for c in class_names] if class_names else [str(k) for k in range(int(num_classes))]
        if len(names) != int(num_classes):
            raise ConfigError(f"data.class_names has {len(names)} names but data.num_classes={num_classes}.")
        self.num_classes, self.classes, self.ignore_index = int(num_classes), names, int(ignore_index)
        self.path, self.splits, self.columns = path, dict(splits), dict(columns)
        self.split_seed, self.cache_dir = split_seed, cache_dir
        lut = np.arange(256, dtype=np.int64)
        if reduce_labels:  # 0 -> ignored, v -> v - 1, the ignore value stays ignored
            lut = np.concatenate([[self.ignore_index], np.arange(255)]).astype(np.int64)
            lut[self.ignore_index] = self.ignore_index
        self.lut = lut

    def _open(self) -> dict[str, HFSplit]:
        return open_splits(self.path, splits=self.splits, columns=self.columns, required=("image", "mask"),
                           val_fraction=self.val_fraction, split_seed=self.split_seed, cache_dir=self.cache_dir)

    def prepare_data(self) -> None:
        self._open()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        kw = {"img_size": self.img_size, "lut": self.lut, "num_classes": self.num_classes,
              "ignore_index": self.ignore_index}
        made: dict[int, Dataset] = {}  # a test split that is the validation split stays one dataset
        self.sets = {role: made.setdefault(id(split), _ImageMasks(split, train=role == "train", **kw))
                     for role, split in self._open().items()}
