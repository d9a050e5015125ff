"""Real speech corpora read from disk: LibriSpeech (torchaudio's layout) and JSONL manifests.

* LibriSpeech: ``<root>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with
  ``<speaker>-<chapter>.trans.txt``; files are listed with ``torchaudio.datasets.LIBRISPEECH``
  (``get_metadata``, no decoding) and read with ``soundfile`` (``torchaudio.load`` needs FFmpeg).
* Manifest: one JSON object per line, ``{"audio_filepath", "duration", "text"}`` (NeMo style);
  relative paths are resolved against the manifest's folder.

Audio is resampled to the model rate on reading; batches are bucketed by duration.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from core.train.errors import ConfigError
from speech.data.audio import audio_duration, read_audio
from speech.data.batching import SpeechDataModuleBase
from core.train.tokenizers import CharTokenizer

__all__ = ["AudioItem", "FileDataset", "LibriSpeechDataModule", "ManifestDataModule", "librispeech_items",
           "manifest_items"]


@dataclass(frozen=True)
class AudioItem:
    path: str
    duration: float
    text: str


def librispeech_items(root: str | Path, subset: str, folder_in_archive: str = "LibriSpeech") -> list[AudioItem]:
    """Utterances of one LibriSpeech subset (``train-clean-100``, ``dev-clean``, ...)."""
    from torchaudio.datasets import LIBRISPEECH

    try:
        ds = LIBRISPEECH(str(root), url=subset, folder_in_archive=folder_in_archive, download=False)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"LibriSpeech subset '{subset}' not found under data.root={root} "
                          f"(expected {Path(root) / folder_in_archive / subset}).") from exc
    items = []
    for n in range(len(ds)):
        rel, _, text, *_ = ds.get_metadata(n)
        path = Path(root) / folder_in_archive / rel
        items.append(AudioItem(str(path), audio_duration(path), text))
    return items


def manifest_items(path: str | Path) -> list[AudioItem]:
    """Utterances listed in a JSONL manifest (``audio_filepath``, ``duration``, ``text``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"manifest {p} does not exist.")
    items = []
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            audio = Path(rec["audio_filepath"]).expanduser()
            items.append(AudioItem(str(audio if audio.is_absolute() else p.parent / audio), float(rec["duration"]),
                                   str(rec["text"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"manifest {p} line {ln} is not a JSON object with audio_filepath, duration "
                              "and text.") from exc
    if not items:
        raise ConfigError(f"manifest {p} lists no utterances.")
    return items


class FileDataset(Dataset):
    """Audio files and transcripts; ``lengths`` (samples, from durations) drive the bucketing."""

    def __init__(self, items: list[AudioItem], tokenizer: CharTokenizer, sample_rate: int) -> None:
        self.items, self.tok, self.sample_rate = items, tokenizer, sample_rate
        self.lengths = [max(1, int(it.duration * sample_rate)) for it in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, str]:
        it = self.items[i]
        return read_audio(it.path, self.sample_rate), torch.tensor(self.tok.encode(it.text), dtype=torch.long), it.text


class _FileDataModule(SpeechDataModuleBase):
    """Shared setup: ``_items(split)`` lists a split; training drops utterances over ``max_seconds``."""

    def __init__(self, *, max_seconds: float | None = None, **kw) -> None:
        super().__init__(**kw)
        self.max_seconds = max_seconds

    @abc.abstractmethod
    def _items(self, split: str) -> list[AudioItem]:
        """The audio items of ``split``; each file layout implements it."""

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            return
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "fit",
                                                                                       ("train", "val", "test"))
        for split in (s for s in splits if s not in self.datasets):
            items = self._items(split)
            if split == "train" and self.max_seconds:
                items = [it for it in items if it.duration <= self.max_seconds]
            self.datasets[split] = FileDataset(items, self.tokenizer, self.sample_rate)


class LibriSpeechDataModule(_FileDataModule):
    """LibriSpeech in torchaudio's layout under ``root`` (subsets listed per split).

    Args:
        root: folder holding ``LibriSpeech/`` (the archives' top folder).
        train, val, test: subset names, e.g. ``[train-clean-100]``, ``[dev-clean]``, ``[test-clean]``.
        max_seconds: drop longer training utterances.
    """

    def __init__(self, *, root: str, train: list[str], val: list[str], test: list[str],
                 folder_in_archive: str = "LibriSpeech", **kw) -> None:
        super().__init__(**kw)
        self.root, self.folder = Path(root).expanduser(), folder_in_archive
        self.subsets = {"train": list(train), "val": list(val), "test": list(test)}

    def _items(self, split: str) -> list[AudioItem]:
        return [it for s in self.subsets[split] for it in librispeech_items(self.root, s, self.folder)]


class ManifestDataModule(_FileDataModule):
    """Any corpus described by JSONL manifests, one per split (``data.train``, ``data.val``, ``data.test``)."""

    def __init__(self, *, train: str, val: str, test: str, **kw) -> None:
        super().__init__(**kw)
        self.manifests = {"train": train, "val": val, "test": test}

    def _items(self, split: str) -> list[AudioItem]:
        return manifest_items(self.manifests[split])
