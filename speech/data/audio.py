"""Audio file I/O with ``soundfile`` (WAV/FLAC/OGG without FFmpeg), mono mix-down, polyphase resampling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch import Tensor

from core.train.errors import InputError

__all__ = ["AUDIO_SUFFIXES", "audio_duration", "read_audio"]

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
    if data.shape[0] == 0:
        raise InputError(f"audio file {p} contains no samples.")
    wave = data.mean(axis=1)
    if not np.isfinite(wave).all():
        raise InputError(f"audio file {p} contains NaN or infinite samples.")
    if sr != sample_rate:
        g = math.gcd(sr, sample_rate)
        wave = resample_poly(wave, sample_rate // g, sr // g).astype(np.float32)  # polyphase FIR
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"{path} is not a readable audio file.") from exc
    return info.frames / info.samplerate
