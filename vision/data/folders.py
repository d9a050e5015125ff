"""Real image classification data read from disk: CIFAR-10/100 (torchvision) and ImageFolder trees.

Nothing is downloaded. Training uses timm's augmentation (``timm.data.create_transform``:
random-resized crop, flip, RandAugment, random erasing); Mixup/CutMix run on batches in
:class:`vision.tasks.MixupClassificationTask`. Layouts under ``root``:

* ``cifar10``: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``;
* ``cifar100``: ``cifar-100-python/{train,test,meta}``;
* ``folder``: ``train/<class>/<image>``, optional ``val/<class>/...`` and ``test/<class>/...``.

Validation is ``val/`` when present, else a fixed 5% of the training set (split seed 0, never
augmented); the test split is ``test/`` (CIFAR: the test batch), else the validation split.
torchvision checks MD5 sums of CIFAR files; ``verify_md5=false`` (default) only checks that the
files exist, so re-packed copies load too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from core.train.data import SplitDataModule, fixed_split
from core.train.errors import InputError

__all__ = ["ImageClassDataModule", "cifar_dataset"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar_dataset(name: str, root: str | Path, *, train: bool, transform=None, verify_md5: bool = False) -> Dataset:
    """torchvision's CIFAR10/CIFAR100 from ``root``; without ``verify_md5`` only file presence is checked."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]
    cls = base
    if not verify_md5:  # torchvision's check_integrity(path, md5=None) only tests that the file exists
        cls = type(f"{base.__name__}Files", (base,), {
            "train_list": [[f, None] for f, _ in base.train_list],
            "test_list": [[f, None] for f, _ in base.test_list],
            "meta": {**base.meta, "md5": None}})
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except RuntimeError as exc:
        raise InputError(f"{name} not found or corrupt under data.root={root} (expected {base.base_folder}/).") from exc


class _Transformed(Dataset):
    """Applies a transform to ``(PIL image, label)`` items of another dataset."""

    def __init__(self, ds: Dataset, transform) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img, y = self.ds[i]
        return self.transform(img.convert("RGB")), y


class ImageClassDataModule(SplitDataModule):
    """CIFAR-10/100 or an ImageFolder tree with timm's training augmentation.

    Args:
        dataset: ``cifar10``, ``cifar100`` or ``folder``.
        root: folder holding the dataset (see module docstring).
        img_size: model input size (CIFAR images are resized when it is not 32).
        auto_augment: timm RandAugment policy string (``None`` to disable).
        scale: random-resized-crop area range; re_prob: random-erasing probability.
    """

    in_chans = 3

    def __init__(self, *, dataset: str, root: str, img_size: int = 32, batch_size: int = 128,
                 num_workers: int = 4, auto_augment: str | None = "rand-m9-mstd0.5-inc1",
                 scale: tuple[float, float] = (0.35, 1.0), re_prob: float = 0.25, val_fraction: float = 0.05,
                 verify_md5: bool = False) -> None:
        super().__init__()
        if dataset not in ("cifar10", "cifar100", "folder"):
            raise ValueError(f"data.dataset must be cifar10, cifar100 or folder, not '{dataset}'.")
        self.dataset, self.root, self.img_size = dataset, Path(root).expanduser(), img_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.auto_augment, self.scale, self.re_prob = auto_augment, tuple(scale), re_prob
        self.val_fraction, self.verify_md5 = val_fraction, verify_md5
        stats = (CIFAR_MEAN, CIFAR_STD) if dataset.startswith("cifar") else (IMAGENET_MEAN, IMAGENET_STD)
        self.mean_std = stats
        self.mean = torch.tensor(stats[0])[:, None, None]
        self.std = torch.tensor(stats[1])[:, None, None]
        self.classes: list[str] = []
        self.sets: dict[str, Dataset] = {}

    # --- what the checkpoint carries (mas-predict needs the class names, not the data)
    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.classes = list(state.get("classes", []))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes} if self.classes else {}

    def _transform(self, train: bool):
        from timm.data import create_transform

        mean, std = self.mean_std
        if train:
            return create_transform(self.img_size, is_training=True, scale=self.scale, auto_augment=self.auto_augment,
                                    re_prob=self.re_prob, interpolation="bicubic", mean=mean, std=std)
        return create_transform(self.img_size, is_training=False, crop_pct=1.0, interpolation="bicubic",
                                mean=mean, std=std)

    def _raw(self) -> dict[str, Dataset]:
        if self.dataset.startswith("cifar"):
            train = cifar_dataset(self.dataset, self.root, train=True, verify_md5=self.verify_md5)
            test = cifar_dataset(self.dataset, self.root, train=False, verify_md5=self.verify_md5)
            return {"train": train, "test": test}
        from torchvision.datasets import ImageFolder

        if not (self.root / "train").is_dir():
            raise InputError(f"ImageFolder tree not found: {self.root / 'train'} is missing (set data.root).")
        out = {s: ImageFolder(str(self.root / s)) for s in ("train", "val", "test") if (self.root / s).is_dir()}
        for s, ds in out.items():
            if ds.classes != out["train"].classes:
                raise InputError(f"{self.root / s} has other class folders than {self.root / 'train'}.")
        return out

    def prepare_data(self) -> None:
        self._raw()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        raw = self._raw()
        self.classes = list(raw["train"].classes)
        train_tf, eval_tf = self._transform(True), self._transform(False)
        if "val" in raw:
            sets = {"train": _Transformed(raw["train"], train_tf), "val": _Transformed(raw["val"], eval_tf)}
        else:
            f = self.val_fraction
            idx = fixed_split(len(raw["train"]), fractions=(1 - f, f, 0.0), seed=0)
            sets = {"train": Subset(_Transformed(raw["train"], train_tf), idx["train"].tolist()),
                    "val": Subset(_Transformed(raw["train"], eval_tf), idx["val"].tolist())}
        sets["test"] = _Transformed(raw["test"], eval_tf) if "test" in raw else sets["val"]
        self.sets = sets

    def normalize(self, x: Tensor) -> Tensor:
        """Pixels in [0, 1] to the model's input scale (used by mas-predict)."""
        return (x - self.mean) / self.std

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

