"""Spoken-command classification (keyword spotting): the label set, 1-second clips, the embedded set.

Labels are those of the 12-class Speech Commands v2 task: ten commands, ``_unknown_`` (any other word)
and ``_silence_`` (background noise, no word). Every example is one ``clip_seconds`` clip.

The embedded set speaks the words with eSpeak NG (several voices, rates, pitches, noise levels), with
the voice policy of the spoken digits (:data:`speech.data.synthesis.VOICE_VARIANTS`: val and test voices
are never trained on). Labels are drawn uniformly, so the classes are balanced; an ``_unknown_`` example
says one of the other 25 Speech Commands v2 words; a ``_silence_`` example is white, brown or near-silent
noise. Built once (seeded, independent of the number of build workers) and cached.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from core.train.data import SplitDataModule, cached_tensors
from speech.data.espeak import Utterance
from speech.data.synthesis import (ACCENTS, SPLITS, VOICE_VARIANTS, check_voices, finish, spec_key,
                                   synthesize_batches, uniform_int)

__all__ = ["COMMANDS", "LABELS", "SILENCE", "UNKNOWN", "UNKNOWN_WORDS", "ClipBatches", "CommandsSpec",
           "ClipDataModule", "SpokenCommandsDataModule", "build_spoken_commands", "fit_clip"]

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
LABELS = (SILENCE, UNKNOWN, *COMMANDS)  # the order of the 12-class Speech Commands task
UNKNOWN_WORDS = ("backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy",
                 "house", "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two",
                 "visual", "wow", "zero")


def fit_clip(wave: Tensor, n: int, offset: float = 0.5) -> Tensor:
    """``wave (T,)`` as exactly ``n`` samples: a longer wave keeps its loudest window of ``n`` samples
    (energy in 10 ms frames); a shorter one is zero-padded, ``offset`` in [0, 1] of the free space before it."""
    if len(wave) > n:
        frame = max(1, n // 100)
        energy = torch.nn.functional.pad(wave.float().pow(2), (0, (-len(wave)) % frame)).view(-1, frame).sum(1)
        win = n // frame
        sums = energy.cumsum(0)
        totals = sums[win - 1:] - torch.cat([sums.new_zeros(1), sums[:-win]])
        start = min(int(totals.argmax()) * frame, len(wave) - n)
        return wave[start:start + n]
    before = int(round((n - len(wave)) * offset))
    return torch.nn.functional.pad(wave, (before, n - len(wave) - before))


class ClipBatches:
    """Collate ``(int16 clip, label)`` items into ``(wave (B, T) float, wave_lens (B,), y (B,))``;
    in training each clip is rolled by up to ``shift_seconds`` (a time shift, as keyword spotters train)."""

    def __init__(self, sample_rate: int, shift_seconds: float = 0.0) -> None:
        self.shift = int(shift_seconds * sample_rate)

    def __call__(self, items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
        wave = torch.stack([w for w, _ in items]).float() / 32768.0
        if self.shift:  # zero-filled shift, as the speech-commands recipes do (not a wrap-around roll)
            shifted, t = torch.zeros_like(wave), wave.shape[1]
            for i, s in enumerate(torch.randint(-self.shift, self.shift + 1, (len(items),)).tolist()):
                shifted[i, max(s, 0):t + min(s, 0)] = wave[i, max(-s, 0):t - max(s, 0)]
            wave = shifted
        lens = torch.full((len(items),), wave.shape[1], dtype=torch.long)
        return wave, lens, torch.stack([y for _, y in items])


@dataclass
class CommandsSpec:
    """Everything that determines the embedded command set (its hash names the cache file); the
    fields mirror :class:`speech.data.digits.DigitsSpec`."""

    num_utterances: dict[str, int] = field(default_factory=lambda: {"train": 6000, "val": 600, "test": 1200})
    variants: dict[str, list[str]] = field(default_factory=lambda: copy.deepcopy(VOICE_VARIANTS))
    accents: list[str] = field(default_factory=lambda: list(ACCENTS))
    rate: tuple[int, int] = (120, 240)
    pitch: tuple[int, int] = (20, 80)
    pitch_range: tuple[int, int] = (10, 90)
    snr_db: tuple[float, float] = (10.0, 40.0)
    pad_seconds: tuple[float, float] = (0.0, 0.05)
    clip_seconds: float = 1.0
    sample_rate: int = 16000
    batch: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        check_voices(self.variants, self.num_utterances)

    def key(self) -> str:
        return spec_key(self)


def make_requests(spec: CommandsSpec) -> list[tuple[int, int, str, Utterance | None]]:
    """Every example in build order: ``(split index, label index, word, utterance or None for silence)``."""
    out = []
    for si, split in enumerate(SPLITS):
        variants = spec.variants.get(split, [])
        for i in range(spec.num_utterances.get(split, 0)):
            rng = np.random.default_rng([spec.seed, si, i])
            label = int(rng.integers(len(LABELS)))
            word = LABELS[label] if label >= 2 else UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))]
            voice = f"{spec.accents[int(rng.integers(len(spec.accents)))]}+{variants[i % len(variants)]}"
            u = Utterance(text=word, voice=voice, rate=uniform_int(rng, spec.rate), pitch=uniform_int(rng, spec.pitch),
                          pitch_range=uniform_int(rng, spec.pitch_range), seed=int(rng.integers(2**31)))
            out.append((si, label, "" if label == 0 else word, None if label == 0 else u))
    return out


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """A ``_silence_`` clip: white, brown (integrated white) or near-silent noise at a random level."""
    kind = int(rng.integers(3))
    x = rng.normal(0.0, 1.0, n)
    if kind == 1:
        x = np.cumsum(x)
        x -= np.linspace(x[0], x[-1], n)  # no drift to the clip's edges
    x = x / (np.abs(x).max() or 1.0) * (rng.uniform(0.001, 0.01) if kind == 2 else rng.uniform(0.01, 0.3))
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def build_spoken_commands(spec: CommandsSpec, *, num_workers: int = 1, progress: bool = True) -> dict:
    """Synthesise the set: ``audio`` int16 ``(N, clip)``, ``label`` (N,), ``split`` (N,), ``word``/``voice``."""
    reqs = make_requests(spec)
    n = int(round(spec.clip_seconds * spec.sample_rate))
    audio = torch.zeros(len(reqs), n, dtype=torch.int16)
    spoken = [k for k, r in enumerate(reqs) if r[3] is not None]
    for first, sr_in, out in synthesize_batches([reqs[k][3] for k in spoken], batch=spec.batch,
                                                num_workers=num_workers, label="spoken commands", progress=progress):
        for j, w in enumerate(out):
            k = spoken[first + j]
            rng = np.random.default_rng([spec.seed, reqs[k][0], k, 1])
            wave = finish(w, sr_in, spec.sample_rate, rng, pad_seconds=spec.pad_seconds, snr_db=spec.snr_db)
            audio[k] = fit_clip(torch.from_numpy(wave), n, offset=float(rng.uniform()))
    for k, r in enumerate(reqs):
        if r[3] is None:
            audio[k] = torch.from_numpy(_noise(n, np.random.default_rng([spec.seed, r[0], k, 2])))
    return {"audio": audio, "label": torch.tensor([r[1] for r in reqs]),
            "split": torch.tensor([r[0] for r in reqs], dtype=torch.int8), "word": [r[2] for r in reqs],
            "voice": ["" if r[3] is None else r[3].voice for r in reqs], "sample_rate": spec.sample_rate}


class ClipDataModule(SplitDataModule):
    """What the command datamodules share: ``classes``, ``sample_rate`` and ``clip_seconds`` travel in the
    checkpoint; subclasses fill ``self.sets`` (split -> dataset of ``(int16 clip, label)``) in ``setup``."""

    classes = list(LABELS)

    def __init__(self, *, batch_size: int, num_workers: int, sample_rate: int, clip_seconds: float,
                 shift_seconds: float) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.sample_rate = batch_size, num_workers, sample_rate
        self.clip_seconds, self.shift_seconds = clip_seconds, shift_seconds
        self.sets: dict[str, Any] = {}

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_classes": len(self.classes), "sample_rate": self.sample_rate}

    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.classes, self.sample_rate = list(state["classes"]), int(state["sample_rate"])
        self.clip_seconds = float(state["clip_seconds"])

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        collate = ClipBatches(self.sample_rate, self.shift_seconds if train else 0.0)
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=train, drop_last=train,
                          collate_fn=collate, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)


class SpokenCommandsDataModule(ClipDataModule):
    """Embedded spoken commands (eSpeak NG), held-out voices for val/test, cached under ``cache_dir``.

    Batches are ``(wave (B, T), wave_lens (B,), label (B,))`` from ready tensors (no per-file work).

    Args:
        num_utterances, variants: as :class:`CommandsSpec` (tests use a tiny set).
        shift_seconds: training time shift (see :class:`ClipBatches`).
    """

    def __init__(self, *, cache_dir: str, num_utterances: dict[str, int] | None = None,
                 variants: dict[str, list[str]] | None = None, build_workers: int = 2, batch_size: int = 64,
                 num_workers: int = 0, sample_rate: int = 16000, shift_seconds: float = 0.1) -> None:
        kw: dict[str, Any] = {"sample_rate": sample_rate}
        if num_utterances is not None:
            kw["num_utterances"] = {s: int(num_utterances.get(s, 0)) for s in SPLITS}
        if variants is not None:
            kw["variants"] = {s: [str(v) for v in variants.get(s, [])] for s in SPLITS}
        spec = CommandsSpec(**kw)
        super().__init__(batch_size=batch_size, num_workers=num_workers, sample_rate=sample_rate,
                         clip_seconds=spec.clip_seconds, shift_seconds=shift_seconds)
        self.spec, self.build_workers = spec, build_workers
        self.path = Path(cache_dir).expanduser() / "speech" / f"spoken_commands-{spec.key()}.pt"

    def _data(self) -> dict:
        return cached_tensors(self.path, lambda: build_spoken_commands(self.spec, num_workers=self.build_workers))

    def prepare_data(self) -> None:
        self._data()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        data = self._data()
        self.sets = {s: TensorDataset(data["audio"][data["split"] == k], data["label"][data["split"] == k])
                     for k, s in enumerate(SPLITS)}
