"""Tiny datasets fabricated in the real on-disk layouts (CIFAR python batches, Oxford-IIIT Pet, ImageFolder)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar(root: Path, name: str = "cifar10", n_train: int = 40, n_test: int = 20) -> Path:
    """``cifar-10-batches-py`` (5 train batches) or ``cifar-100-python`` with random images."""
    rng = np.random.RandomState(0)
    k = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(n: int) -> dict:
        return {"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8), label_key: rng.randint(0, k, n).tolist()}

    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1, 6):
            (base / f"data_batch_{i}").write_bytes(pickle.dumps(batch(n_train // 5)))
        (base / "test_batch").write_bytes(pickle.dumps(batch(n_test)))
        (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(k)]}))
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True, exist_ok=True)
        (base / "train").write_bytes(pickle.dumps(batch(n_train)))
        (base / "test").write_bytes(pickle.dumps(batch(n_test)))
        (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(k)]}))
    return root


def write_pet(root: Path, n_trainval: int = 12, n_test: int = 6) -> Path:
    """``oxford-iiit-pet/{images,annotations/trimaps,annotations/*.txt}``: ellipse pets on noise, odd sizes."""
    rng = np.random.RandomState(0)
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for i in range(n_trainval + n_test):
        split = "trainval" if i < n_trainval else "test"
        name = f"{'Abyssinian' if i % 2 else 'beagle'}_{i + 1}"
        h, w = 40 + 3 * i, 50 + 2 * i
        yy, xx = np.mgrid[:h, :w]
        d = ((yy - h / 2) / (h / 3)) ** 2 + ((xx - w / 2) / (w / 3)) ** 2
        tri = np.where(d < 0.8, 1, np.where(d < 1.2, 3, 2)).astype(np.uint8)  # 1 pet, 2 background, 3 border
        img = rng.randint(0, 80, (h, w, 3)).astype(np.uint8)
        img[tri == 1] += 150
        Image.fromarray(img).save(base / "images" / f"{name}.jpg")
        Image.fromarray(tri).save(base / "annotations" / "trimaps" / f"{name}.png")
        lines[split].append(f"{name} {1 + i % 2} {1 + i % 2} 1")
    for split, ls in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def write_imagefolder(root: Path, classes=("cat", "dog"), per_class: int = 6, splits=("train", "val")) -> Path:
    """``<split>/<class>/<i>.png`` with images of several modes and sizes."""
    rng = np.random.RandomState(0)
    for split in splits:
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.randint(0, 256, (20 + i, 24 + 2 * i, 3)).astype(np.uint8)
                arr[..., c % 3] = 255
                im = Image.fromarray(arr)
                im = im.convert(["RGB", "L", "RGBA", "P"][i % 4])
                im.save(d / f"{i}.png")
    return root
