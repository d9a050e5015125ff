"""Attention over spectrogram frames: one PNG with the log-mel input and a layer's attention map."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from core.nn.attention import record_attention

__all__ = ["frame_attention", "plot_frame_attention"]


@torch.no_grad()
def frame_attention(model, wave: Tensor, layer: int = -1) -> tuple[Tensor, Tensor, Tensor]:
    """Head-averaged attention ``(N, N)`` of encoder layer ``layer`` over the subsampled frames,
    their centre times ``(N,)`` in seconds, and the log-mel input ``(T, n_mels)`` of ``wave`` (S,)."""
    model.eval()
    lens = torch.tensor([len(wave)])
    with record_attention(model.encoder) as mods:
        model(wave[None], lens)
    attn = list(mods.values())[layer].last_attn[0].mean(0)  # (N, N)
    feats, _ = model.features(wave[None], lens)
    return attn, model.frame_times(attn.shape[-1])[0, :, 0], feats[0]


def plot_frame_attention(model, wave: Tensor, path: str | Path, layer: int = -1, title: str = "") -> Path:
    """Write the log-mel spectrogram above the attention map (axes in seconds) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attn, times, feats = frame_attention(model, wave, layer)
    seconds = len(wave) / model.sample_rate
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(5, 7), gridspec_kw={"height_ratios": [1, 3]})
    ax0.imshow(feats.T, origin="lower", aspect="auto", extent=(0, seconds, 0, feats.shape[1]))
    index = layer % len(model.encoder.blocks)
    ax0.set(ylabel="mel bin", title=title or f"encoder layer {index} attention (mean over heads)")
    end = float(times[-1]) + model.frame_seconds
    ax1.imshow(attn, origin="upper", aspect="auto", extent=(0, end, end, 0), cmap="viridis")
    ax1.set(xlabel="key frame time (s)", ylabel="query frame time (s)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
