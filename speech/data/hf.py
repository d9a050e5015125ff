"""Speech from Hugging Face datasets on disk: CTC recognition and spoken-command classification.

The splits and columns come from :func:`core.train.hf_source.open_splits`; this module only turns a row's
audio into a waveform and hands the existing datamodules their usual items, so batching, bucketing,
tokenizer and checkpoint state are theirs:

* recognition: ``(wave (T,), ids (L,), transcript)`` items for :class:`speech.data.batching.SpeechDataModuleBase`;
* commands: ``(int16 clip, label)`` items for :class:`speech.data.commands.ClipDataModule`.

Audio is decoded with ``soundfile`` (never ``datasets``' own decoder, which needs torchcodec/FFmpeg) from
what the column holds: ``{"bytes", "path"}`` of an ``Audio(decode=False)`` feature (an Audio feature is
read undecoded), bytes, a file path, ``{"array", "sampling_rate"}``, or a plain sample array with its rate in
``columns.sampling_rate`` or ``audio_rate``. Every waveform is mixed to mono and resampled to ``sample_rate``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset

from core.train.errors import InputError
from core.train.hf_source import HFSplit, class_names, label_indices, media_source, open_splits
from speech.data.audio import audio_duration, mono_at_rate, read_audio, read_audio_bytes
from speech.data.batching import SpeechDataModuleBase
from speech.data.commands import ClipDataModule, fit_clip

__all__ = ["HFCommandsDataModule", "HFSpeechDataModule", "row_seconds", "row_wave"]

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


def _array_and_rate(split: HFSplit, value: Any, rec: Mapping[str, Any], audio_rate: int | None) -> tuple[Any, int]:
    if isinstance(value, Mapping):
        if "array" not in value:
            raise InputError(f"{split.where('audio')} has a row with neither audio bytes nor a file path.")
        arr, sr = value["array"], value.get("sampling_rate")
    else:
        arr, sr = value, rec.get("sampling_rate")
    sr = sr or audio_rate
    if not sr:
        raise InputError(f"{split.where('audio')} holds sample arrays without a rate; set data.columns.sampling_rate "
                         "to the rate column or data.audio_rate to the rate.")
    return arr, int(sr)


def row_wave(split: HFSplit, rec: Mapping[str, Any], i: int, sample_rate: int, audio_rate: int | None) -> Tensor:
    """The mono float32 waveform ``(T,)`` at ``sample_rate`` of row ``i``'s audio (``rec = split.record(i)``)."""
    value = rec["audio"]
    src = media_source(value, split.root)
    if isinstance(src, bytes):
        return read_audio_bytes(src, sample_rate, name=f"row {i} of {split.where('audio')}")
    if isinstance(src, str):
        return read_audio(src, sample_rate)
    arr, sr = _array_and_rate(split, value, rec, audio_rate)
    return mono_at_rate(np.asarray(arr, dtype=np.float32), sr, sample_rate, name=f"row {i} of {split.where('audio')}")


def row_seconds(split: HFSplit, audio_rate: int | None) -> list[float]:
    """Every row's duration: the ``duration`` column when mapped, else read from the audio headers (bytes and
    files are not decoded) or array lengths."""
    if split.columns.get("duration"):
        return [float(v) for v in split.values("duration")]
    rates = split.values("sampling_rate") if split.columns.get("sampling_rate") else None
    out = []
    for i, value in enumerate(split.iter_values("audio")):
        src = media_source(value, split.root)
        if isinstance(src, bytes):
            try:
                info = sf.info(io.BytesIO(src))
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                raise InputError(f"row {i} of {split.where('audio')} is not readable audio "
                                 "(WAV, FLAC or OGG expected).") from exc
            out.append(info.frames / info.samplerate)
        elif isinstance(src, str):
            out.append(audio_duration(src))
        else:
            arr, sr = _array_and_rate(split, value, {"sampling_rate": rates[i] if rates else None}, audio_rate)
            out.append(len(arr) / sr)
    return out


def _open(dm: Any, required: tuple[str, ...]) -> dict[str, HFSplit]:
    return open_splits(dm.path, splits=dm.splits, columns=dm.columns, required=required,
                       val_fraction=dm.val_fraction, split_seed=dm.split_seed, cache_dir=dm.cache_dir)


class _Utterances(Dataset):
    """Rows ``rows`` of a split as ``(wave, ids, transcript)``; ``lengths`` (samples) drive the bucketing."""

    def __init__(self, split: HFSplit, rows: list[int], seconds: list[float], *, tokenizer, sample_rate: int,
                 audio_rate: int | None) -> None:
        self.split, self.rows, self.tok = split, rows, tokenizer
        self.sample_rate, self.audio_rate = sample_rate, audio_rate
        self.lengths = [max(1, int(seconds[r] * sample_rate)) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, str]:
        r = self.rows[i]
        rec = self.split.record(r)
        text = "" if rec["transcript"] is None else str(rec["transcript"])
        wave = row_wave(self.split, rec, r, self.sample_rate, self.audio_rate)
        return wave, torch.tensor(self.tok.encode(text), dtype=torch.long), text


class HFSpeechDataModule(SpeechDataModuleBase):
    """CTC recognition on a Hugging Face dataset saved on disk (``save_to_disk`` folder or parquet).

    Args:
        path, splits, val_fraction, split_seed, cache_dir: see :func:`core.train.hf_source.open_splits`.
        columns: ``audio`` and ``transcript`` (required); optional ``sampling_rate`` (rate of array audio) and
            ``duration`` (seconds; saves reading every audio header at start-up).
        audio_rate: the rate of array audio when no column gives it.
        max_seconds: drop longer training utterances.
    """

    def __init__(self, *, path: str, splits: dict[str, str | None], columns: dict[str, str | None],
                 val_fraction: float = 0.05, split_seed: int = 0, cache_dir: str | None = None,
                 audio_rate: int | None = None, max_seconds: float | None = None, **kw) -> None:
        super().__init__(**kw)
        self.path, self.splits, self.columns = path, dict(splits), dict(columns)
        self.val_fraction, self.split_seed, self.cache_dir = val_fraction, split_seed, cache_dir
        self.audio_rate, self.max_seconds = audio_rate, max_seconds

    def prepare_data(self) -> None:
        _open(self, ("audio", "transcript"))

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            return
        wanted = [s for s in _STAGE_SPLITS.get(stage or "fit", ("train", "val", "test")) if s not in self.datasets]
        if not wanted:
            return
        opened = _open(self, ("audio", "transcript"))
        for name in wanted:
            split = opened[name]
            seconds = row_seconds(split, self.audio_rate)
            rows = list(range(len(split)))
            if name == "train" and self.max_seconds:
                rows = [r for r in rows if seconds[r] <= self.max_seconds]
            self.datasets[name] = _Utterances(split, rows, seconds, tokenizer=self.tokenizer,
                                              sample_rate=self.sample_rate, audio_rate=self.audio_rate)


class _LabelledClips(Dataset):
    """A split's rows as ``(int16 clip of exactly `samples`, label)``, as the command datamodules give them."""

    def __init__(self, split: HFSplit, labels: list[int], *, samples: int, sample_rate: int,
                 audio_rate: int | None) -> None:
        self.split, self.labels, self.samples = split, labels, samples
        self.sample_rate, self.audio_rate = sample_rate, audio_rate

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        wave = row_wave(self.split, self.split.record(i), i, self.sample_rate, self.audio_rate)
        clip = fit_clip(wave, self.samples)
        return (clip.clamp(-1, 1) * 32767).to(torch.int16), torch.tensor(self.labels[i])


class HFCommandsDataModule(ClipDataModule):
    """Spoken-command (keyword) classification on a Hugging Face dataset saved on disk.

    The classes are the label column's (a ClassLabel's names, else its sorted values); a checkpoint's
    classes win when one is loaded. Every clip is cut or padded to ``clip_seconds``.

    Args:
        path, splits, val_fraction, split_seed, cache_dir: see :func:`core.train.hf_source.open_splits`.
        columns: ``audio`` and ``label`` (required); optional ``sampling_rate`` (rate of array audio).
        audio_rate: the rate of array audio when no column gives it.
    """

    def __init__(self, *, path: str, splits: dict[str, str | None], columns: dict[str, str | None],
                 val_fraction: float = 0.1, split_seed: int = 0, cache_dir: str | None = None,
                 audio_rate: int | None = None, batch_size: int = 64, num_workers: int = 0,
                 sample_rate: int = 16000, clip_seconds: float = 1.0, shift_seconds: float = 0.1) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, sample_rate=sample_rate,
                         clip_seconds=clip_seconds, shift_seconds=shift_seconds)
        self.path, self.splits, self.columns = path, dict(splits), dict(columns)
        self.val_fraction, self.split_seed, self.cache_dir = val_fraction, split_seed, cache_dir
        self.audio_rate = audio_rate
        self.classes: list[str] = []

    def prepare_data(self) -> None:
        _open(self, ("audio", "label"))

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.sets:
            return
        opened = _open(self, ("audio", "label"))
        self.classes = self.classes or class_names(opened["train"])
        samples = int(round(self.clip_seconds * self.sample_rate))
        self.sets = {name: _LabelledClips(split, label_indices(split, self.classes), samples=samples,
                                          sample_rate=self.sample_rate, audio_rate=self.audio_rate)
                     for name, split in opened.items()}
