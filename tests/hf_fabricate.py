"""Tiny Hugging Face datasets fabricated with the ``datasets`` package, saved the two ways users have them:
``save_to_disk`` folders and parquet files. Media are stored as real encoded files (PNG, 16-bit WAV) in
``Image(decode=False)`` / ``Audio(decode=False)`` columns, as ``datasets`` itself stores them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image as PILImage


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def pcm16(n: int, seed: int) -> np.ndarray:
    """``n`` random 16-bit samples as the float32 values soundfile reads back exactly (k / 32768)."""
    return (np.random.default_rng(seed).integers(-8000, 8000, n) / 32768.0).astype(np.float32)


def dataset(columns: dict, features: dict | None = None):
    """A ``datasets.Dataset`` from python lists; ``features`` (name -> feature) are cast afterwards, which
    stores Audio columns without torchcodec (encoding examples would need it)."""
    from datasets import Dataset

    ds = Dataset.from_dict(columns)
    for name, feat in (features or {}).items():
        ds = ds.cast_column(name, feat)
    return ds


def save(splits: dict, root: Path, how: str = "disk") -> Path:
    """Write ``{split name: Dataset}`` as a DatasetDict folder (``disk``), ``<name>.parquet`` files
    (``parquet``) or the Hub's ``data/<name>-00000-of-00001.parquet`` layout (``hub``)."""
    from datasets import DatasetDict

    if how == "disk":
        DatasetDict(splits).save_to_disk(str(root))
    else:
        for name, ds in splits.items():
            dest = root / (f"{name}.parquet" if how == "parquet" else f"data/{name}-00000-of-00001.parquet")
            dest.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(dest))
    return root


def image_classes(n: int, names: list[str], *, size: int = 8, seed: int = 0) -> tuple:
    """``n`` RGB images (``Image(decode=False)``) with ClassLabel ``label`` cycling through ``names``;
    returns the dataset and the pixel arrays."""
    from datasets import ClassLabel, Image

    rng = np.random.default_rng(seed)
    pixels = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    ds = dataset({"image": [{"bytes": png_bytes(p), "path": None} for p in pixels],
                  "label": [i % len(names) for i in range(n)]},
                 {"image": Image(decode=False), "label": ClassLabel(names=names)})
    return ds, pixels


def image_masks(n: int, num_classes: int, *, size: int = 16, seed: int = 0) -> tuple:
    """``n`` images with class-index masks (grayscale PNG, values ``0..num_classes-1``), both decode=False."""
    from datasets import Image

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    masks = [rng.integers(0, num_classes, (size, size), dtype=np.uint8) for _ in range(n)]
    ds = dataset({"pixel_values": [{"bytes": png_bytes(p), "path": None} for p in images],
                  "label_mask": [{"bytes": png_bytes(m), "path": None} for m in masks]},
                 {"pixel_values": Image(decode=False), "label_mask": Image(decode=False)})
    return ds, images, masks


def utterances(texts: list[str], *, sample_rate: int = 16000, seconds: float = 0.25, seed: int = 0) -> tuple:
    """One WAV (``Audio(decode=False)``) per transcript; returns the dataset and the samples."""
    from datasets import Audio

    waves = [pcm16(int(seconds * sample_rate) + 40 * i, seed + i) for i in range(len(texts))]
    ds = dataset({"audio": [{"bytes": wav_bytes(w, sample_rate), "path": None} for w in waves], "text": texts},
                 {"audio": Audio(decode=False)})
    return ds, waves


def commands(n: int, names: list[str], *, sample_rate: int = 16000, seed: int = 0) -> tuple:
    """``n`` one-second WAV clips with a ClassLabel ``label`` cycling through ``names``."""
    from datasets import Audio, ClassLabel

    waves = [pcm16(sample_rate, seed + i) for i in range(n)]
    ds = dataset({"audio": [{"bytes": wav_bytes(w, sample_rate), "path": None} for w in waves],
                  "label": [i % len(names) for i in range(n)]},
                 {"audio": Audio(decode=False), "label": ClassLabel(names=names)})
    return ds, waves
