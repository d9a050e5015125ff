"""Speech Commands v2 read from disk, in its own layout (nothing is downloaded).

Layout under ``root``: ``<word>/<speaker>_nohash_<n>.wav`` (1-second 16 kHz clips), ``validation_list.txt``
and ``testing_list.txt`` (paths relative to ``root``; everything else is training), and
``_background_noise_/*.wav`` (long noise recordings). The 12-class task keeps the ten commands, maps
every other word to ``_unknown_`` and cuts ``_silence_`` clips from the background noise. As in the
TensorFlow recipe, each split holds ``unknown_fraction`` and ``silence_fraction`` of its command count
of unknown words and silence (chosen with a fixed seed, so the splits never change).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from core.train.errors import InputError
from speech.data.audio import read_audio
from speech.data.commands import COMMANDS, LABELS, SILENCE, UNKNOWN, ClipDataModule, fit_clip

__all__ = ["SpeechCommandsDataModule", "speech_commands_items"]

NOISE_DIR = "_background_noise_"


def _listed(root: Path, name: str) -> set[str]:
    f = root / name
    return {ln.strip() for ln in f.read_text().splitlines() if ln.strip()} if f.is_file() else set()


def speech_commands_items(root: str | Path, *, unknown_fraction: float = 0.1, silence_fraction: float = 0.1,
                          seed: int = 0) -> dict[str, list[tuple[str | None, int]]]:
    """``{split: [(wav path or None for silence, label index)]}`` of the 12-class task."""
    root = Path(root).expanduser()
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != NOISE_DIR) if root.is_dir() else []
    if not words:
        raise InputError(f"Speech Commands not found: {root} has no <word>/ folders (set data.root).")
    val, test = _listed(root, "validation_list.txt"), _listed(root, "testing_list.txt")
    known: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    unknown: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for word in words:
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            split = "val" if rel in val else "test" if rel in test else "train"
            (known if word in COMMANDS else unknown)[split].append((str(wav), LABELS.index(word if word in COMMANDS
                                                                                       else UNKNOWN)))
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "val", "test"):
        n = len(known[split])
        pick = rng.permutation(len(unknown[split]))[: int(round(unknown_fraction * n))]
        out[split] = known[split] + [unknown[split][i] for i in sorted(pick)]
        out[split] += [(None, LABELS.index(SILENCE))] * int(round(silence_fraction * n))
    return out


class _Clips(Dataset):
    """Fixed-length int16 clips of listed files; ``_silence_`` items are cut from the noise recordings."""

    def __init__(self, items: list[tuple[str | None, int]], noise: list[Tensor], *, samples: int, sample_rate: int,
                 seed: int) -> None:
        self.items, self.noise, self.samples, self.sample_rate, self.seed = items, noise, samples, sample_rate, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        path, label = self.items[i]
        if path is None:  # a fixed (seeded) window of a fixed noise recording, at a fixed level
            rng = np.random.default_rng([self.seed, i])
            if not self.noise:
                wave = torch.zeros(self.samples)
            else:
                rec = self.noise[int(rng.integers(len(self.noise)))]
                start = int(rng.integers(max(1, len(rec) - self.samples)))
                wave = fit_clip(rec[start:start + self.samples], self.samples) * float(rng.uniform(0.0, 1.0))
        else:
            wave = fit_clip(read_audio(path, self.sample_rate), self.samples)
        return (wave.clamp(-1, 1) * 32767).to(torch.int16), torch.tensor(label)


class SpeechCommandsDataModule(ClipDataModule):
    """Speech Commands v2, 12 classes; batches as :class:`speech.data.commands.SpokenCommandsDataModule`'s.

    Args:
        root: the folder holding the word folders and the two lists.
        unknown_fraction, silence_fraction: per split, relative to its number of command clips.
        clip_seconds, sample_rate: clip length and model rate; shift_seconds: training time shift.
    """

    def __init__(self, *, root: str, batch_size: int = 64, num_workers: int = 2, sample_rate: int = 16000,
                 clip_seconds: float = 1.0, unknown_fraction: float = 0.1, silence_fraction: float = 0.1,
                 shift_seconds: float = 0.1, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, sample_rate=sample_rate,
                         clip_seconds=clip_seconds, shift_seconds=shift_seconds)
        self.root, self.samples = Path(root).expanduser(), int(round(clip_seconds * sample_rate))
        self.fractions, self.seed = (unknown_fraction, silence_fraction), seed

    def prepare_data(self) -> None:
        speech_commands_items(self.root, unknown_fraction=self.fractions[0], silence_fraction=self.fractions[1])

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        items = speech_commands_items(self.root, unknown_fraction=self.fractions[0],
                                      silence_fraction=self.fractions[1], seed=self.seed)
        noise = [read_audio(p, self.sample_rate) for p in sorted((self.root / NOISE_DIR).glob("*.wav"))]
        self.sets = {s: _Clips(v, noise, samples=self.samples, sample_rate=self.sample_rate, seed=k)
                     for k, (s, v) in enumerate(items.items())}
