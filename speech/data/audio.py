"""Audio file I/O with ``soundfile`` (WAV/FLAC/OGG without FFmpeg), mono mix-down, polyphase resampling."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch import Tensor

from core.train.errors import InputError

__all__ = ["AUDIO_SUFFIXES", "audio_duration", "mono_at_rate", "read_audio", "read_audio_bytes"]

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3"}


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Mono float32 waveform ``(T,)`` in [-1, 1] at ``sample_rate``; stereo is averaged.

    Raises :class:`InputError` for a missing, empty, corrupt or non-audio file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file {p} does not exist.")
    if p.stat().st_size == 0:
        raise InputError(f"audio file {p} is empty (0 bytes).")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)  # (T, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"{p} is not a readable audio file (WAV, FLAC or OGG expected).") from exc
    return mono_at_rate(data, sr, sample_rate, name=f"audio file {p}")


def read_audio_bytes(data: bytes, sample_rate: int, *, name: str = "audio bytes") -> Tensor:
    """:func:`read_audio` for an encoded file held in memory (e.g. a dataset's ``{"bytes"}`` column)."""
    if not data:
        raise InputError(f"{name} is empty (0 bytes).")
    try:
        frames, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"{name} is not readable audio (WAV, FLAC or OGG expected).") from exc
    return mono_at_rate(frames, sr, sample_rate, name=name)


def mono_at_rate(data: np.ndarray, sr: int, sample_rate: int, *, name: str = "audio") -> Tensor:
    """Samples ``(T,)`` or ``(T, channels)`` at rate ``sr`` as a mono float32 ``(T',)`` at ``sample_rate``."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] == 0:
        raise InputError(f"{name} contains no samples.")
    wave = data.mean(axis=1)
    if not np.isfinite(wave).all():
        raise InputError(f"{name} contains NaN or infinite samples.")
    if sr != sample_rate:
        g = math.gcd(int(sr), sample_rate)
        wave = resample_poly(wave, sample_rate // g, int(sr) // g).astype(np.float32)  # polyphase FIR
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"{path} is not a readable audio file.") from exc
    return info.frames / info.samplerate
