"""The HTK mel scale (2595 log10(1 + f / 700)), for numpy arrays and torch tensors alike."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["hz_to_mel", "mel_to_hz"]


def hz_to_mel(hz):
    """Mels of ``hz`` (same type as given: a tensor stays on its device)."""
    log10 = torch.log10 if isinstance(hz, torch.Tensor) else np.log10
    return 2595.0 * log10(1.0 + hz / 700.0)


def mel_to_hz(mel):
    """Hertz of ``mel``, the inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
