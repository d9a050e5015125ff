"""Export graphs of the text models (see :mod:`core.nn.graphs`).

Classifiers: ``tokens (B, N)`` int64 and ``padding_mask (B, N)`` bool (True = padding) -> logits.

The translator exports two graphs that together run greedy or beam decoding outside PyTorch:

* ``encoder``: ``src (B, S)``, ``src_mask (B, S)`` -> ``memory (B, S, C)``;
* ``decoder_step``: the newest target token ``token (B, 1)``, ``memory``, ``src_mask`` and the
  self-attention cache of every decoder layer, ``past_keys``/``past_values`` ``(L, B, H, T, Dh)``
  (``T = 0`` at the first step, which feeds ``<s>``) -> next-token ``log_probs (B, V)`` and the cache
  grown by one position, ``present_keys``/``present_values`` ``(L, B, H, T + 1, Dh)``. Cross-attention
  keys and values are projected from ``memory`` inside each step instead of being cached: one input
  fewer per layer, at the cost of one projection of the source per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.nn.attention import KVCache
from core.nn.graphs import ExportGraph
from nlp.tokenizers import BOS, SPECIALS

__all__ = ["DecoderStep", "SourceEncoder", "empty_cache", "token_graph", "translation_graphs"]

_FIRST_ID = len(SPECIALS)  # examples use ordinary tokens, not the specials


def _tokens(batch: int, length: int, vocab: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    ids = torch.randint(_FIRST_ID, vocab, (batch, length), generator=gen)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask[-1, length * 2 // 3:] = True  # the last row is padded, the others are full
    return ids, mask


def token_graph(model: nn.Module, *, vocab_size: int, max_len: int) -> ExportGraph:
    gen = torch.Generator().manual_seed(0)
    first, second = _tokens(2, min(9, max_len), vocab_size, gen), _tokens(3, min(14, max_len), vocab_size, gen)
    axes = {"tokens": {0: "batch", 1: "seq"}, "padding_mask": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
    return ExportGraph("model", model, first, second, ["tokens", "padding_mask"], ["logits"], axes,
                       note="tokens (B, N), padding_mask (B, N) -> class logits (B, K)")


class SourceEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_mask: Tensor) -> Tensor:
        return self.model.encode(src, src_mask)


class DecoderStep(nn.Module):
    """One incremental decoding step with the self-attention cache as explicit tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, memory: Tensor, src_mask: Tensor, past_keys: Tensor,
                past_values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cache = []
        for k, v in zip(past_keys.unbind(0), past_values.unbind(0)):
            own = KVCache()
            own.k, own.v = k, v
            cache.append((own, KVCache()))  # an empty cross cache: keys/values come from memory every step
        h = self.model.decoder.step(self.model.tgt_embed(token), memory, cache, memory_padding_mask=src_mask)
        log_probs = self.model.head(h)[:, -1].float().log_softmax(dim=-1)
        return log_probs, torch.stack([c.k for c, _ in cache]), torch.stack([c.v for c, _ in cache])


def empty_cache(model: nn.Module, batch: int, length: int = 0) -> Tensor:
    """A zero self-attention cache ``(L, B, H, length, Dh)`` for :class:`DecoderStep`."""
    attn = model.decoder.blocks[0].attn
    return torch.zeros(len(model.decoder.blocks), batch, attn.num_heads, length, attn.head_dim)


def translation_graphs(model: nn.Module) -> list[ExportGraph]:
    gen = torch.Generator().manual_seed(0)
    vocab = model.src_embed.num_embeddings
    src = [_tokens(b, n, vocab, gen) for b, n in ((2, 7), (3, 11))]
    with torch.no_grad():
        memory = [model.encode(s, m) for s, m in src]
    enc_axes = {"src": {0: "batch", 1: "src_len"}, "src_mask": {0: "batch", 1: "src_len"},
                "memory": {0: "batch", 1: "src_len"}}
    encoder = ExportGraph("encoder", SourceEncoder(model), src[0], src[1], ["src", "src_mask"], ["memory"], enc_axes,
                          note="source tokens -> memory")
    steps = []
    for (s, m), mem, past in zip(src, memory, (3, 0)):  # traced with a cache of 3 positions, checked at the first step
        b = len(s)
        token = torch.randint(_FIRST_ID, vocab, (b, 1), generator=gen) if past else torch.full((b, 1), BOS)
        cache = torch.randn(empty_cache(model, b, past).shape, generator=gen)
        steps.append((token, mem, m, cache, torch.randn(cache.shape, generator=gen)))
    cache_axes = {1: "batch", 3: "past"}
    dec_axes = {"token": {0: "batch"}, "memory": {0: "batch", 1: "src_len"}, "src_mask": {0: "batch", 1: "src_len"},
                "past_keys": cache_axes, "past_values": cache_axes, "log_probs": {0: "batch"},
                "present_keys": {1: "batch", 3: "present"}, "present_values": {1: "batch", 3: "present"}}
    decoder = ExportGraph("decoder_step", DecoderStep(model), steps[0], steps[1],
                          ["token", "memory", "src_mask", "past_keys", "past_values"],
                          ["log_probs", "present_keys", "present_values"], dec_axes,
                          note="newest token + self-attention cache -> next-token log-probs + grown cache")
    return [encoder, decoder]
