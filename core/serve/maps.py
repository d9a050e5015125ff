"""One attention map (one layer, one head) on demand, for the demo adapters of every domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from core.nn.attention import AttentionBase, record_attention

__all__ = ["LayerDemo", "attention_layers", "head_map", "layers_and_heads"]


def attention_layers(root: nn.Module | None) -> list[AttentionBase]:
    """The attention modules under ``root`` in layer order (registration order of the blocks)."""
    return [] if root is None else [m for m in root.modules() if isinstance(m, AttentionBase)]


def layers_and_heads(layers: list[AttentionBase]) -> tuple[int, int]:
    """``(layers, heads)`` for the demo's choices; ``(0, 0)`` when the model has none of our attention modules."""
    return (len(layers), int(layers[0].num_heads)) if layers else (0, 0)


@torch.no_grad()
def head_map(layers: list[AttentionBase], layer: int, head: int, forward: Callable[[], Any]) -> Tensor:
    """``(Nq, Nk)`` weights of ``head`` in ``layers[layer]`` while ``forward()`` runs (first item of its batch).

    Only that module records, so the other layers keep their fast path (SDPA gives no weights).
    """
    with record_attention(layers[layer]) as mods:
        forward()
    attn = next(iter(mods.values())).last_attn  # (B, H, Nq, Nk)
    return attn[0, head].float().cpu()


class LayerDemo:
    """What every domain demo shares: ``layers``, the attention modules the page's layer and head pickers
    choose from, and ``shown``, the predictor record's field that each output displays."""

    layers: list[AttentionBase]
    shown: dict[str, str] = {}

    def attention_shape(self) -> tuple[int, int]:
        return layers_and_heads(self.layers)

    def show(self, record: dict[str, Any]) -> dict[str, Any]:
        return {out: record[key] for out, key in self.shown.items()}
