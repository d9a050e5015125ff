"""Cross-attention alignment maps of a translation model, saved as PNG (matplotlib, Agg)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

from core.nn.attention import record_attention
from nlp.tokenizers import BOS, EOS, PAD, SPECIALS

__all__ = ["cross_attention", "pieces", "save_alignments"]


def pieces(tokenizer, ids: list[int]) -> list[str]:
    """Display strings of single tokens (characters or SentencePiece pieces)."""
    return [tokenizer.piece(i) for i in ids]


@torch.no_grad()
def cross_attention(model: nn.Module, src: Tensor, tgt_in: Tensor, layer: int = -1) -> Tensor:
    """Head-averaged cross-attention of decoder layer ``layer``: ``(B, T, S)`` for target prefix ``tgt_in``."""
    blk = model.decoder.blocks[layer].cross_attn
    with record_attention(blk) as mods:
        model(src, None, tgt_in)
    attn = next(iter(mods.values())).last_attn  # (B, H, T, S)
    return attn.mean(dim=1)


@torch.no_grad()
def save_alignments(model: nn.Module, tokenizer, sources: list[str], encoder, out_dir: str | Path, *,
                    max_len: int | None = None, beam_size: int = 1) -> list[Path]:
    """Translate each source sentence, plot the last decoder layer's cross-attention; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlp.models import translate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    paths = []
    for i, (text, src_ids) in enumerate(zip(sources, encoder.encode(sources, what="sentences to plot"))):
        src = src_ids[None].to(device)
        out = translate(model, src, None, beam_size=beam_size, max_len=max_len)[0].tolist()
        out = [t for t in out if t != PAD]
        if EOS in out:
            out = out[: out.index(EOS) + 1]
        tgt_in = torch.tensor([[BOS, *out[:-1]]] if out else [[BOS]], device=device)
        attn = cross_attention(model, src, tgt_in)[0].float().cpu()  # (T, S)
        ys = pieces(tokenizer, out) if out else [SPECIALS[EOS]]
        xs = pieces(tokenizer, src_ids.tolist())
        fig, ax = plt.subplots(figsize=(max(4, 0.22 * len(xs) + 2), max(3, 0.22 * len(ys) + 2)))
        ax.imshow(attn[: len(ys)].numpy(), cmap="viridis", aspect="auto", vmin=0)
        ax.set_xticks(range(len(xs)), xs, fontsize=7, rotation=90)
        ax.set_yticks(range(len(ys)), ys, fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(text if len(text) < 70 else text[:67] + "...", fontsize=8)
        fig.tight_layout()
        slug = re.sub(r"[^A-Za-z0-9]+", "_", text)[:40].strip("_") or "sentence"
        path = out_dir / f"alignment_{i:02d}_{slug}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    model.train(was_training)
    return paths
