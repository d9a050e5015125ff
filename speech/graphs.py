"""Export graphs of the speech models (see :mod:`core.nn.graphs`): waveforms in.

The graph starts at the waveform ``wave (B, S)`` float at the model's sample rate with
``wave_lens (B,)`` int64 valid samples, so the log-mel front end (STFT) is inside it; batch and
sample axes are dynamic.
"""

from __future__ import annotations

import torch
from torch import nn

from core.nn.graphs import ExportGraph

__all__ = ["wave_graph"]


def wave_graph(model: nn.Module, *, sample_rate: int, outputs: list[str], note: str) -> ExportGraph:
    gen = torch.Generator().manual_seed(0)
    sr = int(sample_rate)
    first = (0.1 * torch.randn(2, sr, generator=gen), torch.tensor([sr, sr * 3 // 4]))
    second = (0.1 * torch.randn(3, 2 * sr, generator=gen), torch.tensor([2 * sr, sr, sr * 3 // 2]))
    axes = {"wave": {0: "batch", 1: "samples"}, "wave_lens": {0: "batch"}}
    for name in outputs:
        axes[name] = {0: "batch", 1: "frames"} if name == "log_probs" else {0: "batch"}
    return ExportGraph("model", model, first, second, ["wave", "wave_lens"], outputs, axes, note=note)
