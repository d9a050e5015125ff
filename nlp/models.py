"""Text models built from ``core``: encoder classifier, bag-of-tokens baseline, encoder-decoder translator.

Forward signatures (what ``core.nn.attention.record_attention`` callers use):

* ``TextClassifier(tokens (B, N) long, padding_mask (B, N) bool True=pad) -> logits (B, num_classes)``
* ``BagOfTokens(tokens, padding_mask) -> logits`` (no attention, no order)
* ``Seq2SeqTransformer(src (B, S), src_mask (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``; decoder
  cross-attention maps live in ``decoder.blocks[i].cross_attn``.

Token embeddings are initialised with unit variance and *not* multiplied by ``sqrt(dim)``: the
sinusoidal PE has per-channel variance 1/2, so neither drowns the other (a ``sqrt(dim)`` scale on
unit embeddings swamps the PE and stalls learning of order).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from core.nn.attention import MultiHeadAttention, record_attention
from core.nn.blocks import TransformerDecoder, TransformerEncoder, encoder_group_matcher
from core.nn.dropout import Dropout
from core.nn.pe import sequence_coords
from nlp.decode import beam_search, greedy_search
from nlp.graphs import token_graph, translation_graphs
from nlp.tokenizers import BOS, EOS, PAD

__all__ = ["BagOfTokens", "IncrementalDecoder", "Seq2SeqTransformer", "TextClassifier", "masked_mean", "translate"]


def masked_mean(x: Tensor, padding_mask: Tensor | None) -> Tensor:
    """Mean over non-padded tokens: ``x (B, N, C)``, ``padding_mask (B, N)`` -> ``(B, C)``."""
    if padding_mask is None:
        return x.mean(dim=1)
    keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


def _check(dim: int, num_heads: int, pool: str | None = None) -> None:
    if dim % num_heads:
        raise ValueError(f"model.dim={dim} is not divisible by model.num_heads={num_heads}.")
    if pool is not None and pool not in ("cls", "mean"):
        raise ValueError(f"model.pool must be 'cls' or 'mean', not '{pool}'.")


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=1.0)  # unit scale, comparable to the PE (see module docstring)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])


class TextClassifier(nn.Module):
    """Transformer encoder over token embeddings; ``pool='cls'`` (class token, no PE) or ``'mean'``.

    Args:
        vocab_size, num_classes, max_len: from the datamodule (``model_kwargs``).
        dim, depth, num_heads, mlp_ratio, drop, attn_drop, drop_path: as timm.
        attn: attention factory (``attention=``); pe: PE factory (``pe=``).
    """

    pos_ndim = 1

    def __init__(self, *, vocab_size: int, num_classes: int, max_len: int = 512, dim: int = 128, depth: int = 4,
                 num_heads: int = 4, mlp_ratio: float = 4.0, qkv_bias: bool = True, pool: str = "cls",
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 attn: Callable[..., nn.Module] = MultiHeadAttention, pe: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        _check(dim, num_heads, pool)
        self.num_classes, self.max_len, self.pool = num_classes, max_len, pool
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.num_prefix = 1 if pool == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.encoder = TransformerEncoder(dim=dim, depth=depth, num_heads=num_heads, attn=attn, pe=pe,
                                          ndim=self.pos_ndim, extent=(max_len,), mlp_ratio=mlp_ratio,
                                          qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop, drop_path=drop_path)
        self.head = nn.Linear(dim, num_classes)
        _init(self)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", *(f"encoder.{n}" for n in self.encoder.no_weight_decay())}

    def group_matcher(self, coarse: bool = False) -> dict:
        return encoder_group_matcher("encoder", stem=("cls_token", "embed."))

    @torch.no_grad()
    def attention_example(self, inputs: tuple[Tensor, ...], label: int, datamodule) -> dict:
        """Last encoder layer's map over the real tokens of one text (see :mod:`core.report.gallery`)."""
        tokens, mask = inputs[0][:1], (inputs[1][:1] if len(inputs) > 1 else None)
        self.eval()
        with record_attention(self.encoder.blocks[-1]) as mods:
            pred = int(self(tokens, mask).argmax(-1))
        attn = next(iter(mods.values())).last_attn[0].float().mean(0)[self.num_prefix:, self.num_prefix:]
        keep = [i for i in range(tokens.shape[1]) if mask is None or not bool(mask[0, i])]
        tok = datamodule.tokenizer
        return {"kind": "tokens", "attn": attn[keep][:, keep].numpy(),
                "labels": [tok.piece(int(tokens[0, i])) for i in keep], "title": f"label {label}, predicted {pred}"}

    def export_graphs(self) -> list:
        return [token_graph(self, vocab_size=self.embed.num_embeddings, max_len=self.max_len)]

    def forward_features(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Encoded tokens ``(B, num_prefix + N, dim)``."""
        x = self.embed(tokens)  # (B, N, C)
        pos = sequence_coords(tokens.shape[1], device=tokens.device)  # (1, N, 1)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
            if padding_mask is not None:
                padding_mask = torch.cat([padding_mask.new_zeros(len(x), 1), padding_mask], dim=1)
        return self.encoder(x, pos, key_padding_mask=padding_mask, num_prefix=self.num_prefix)

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        feats = self.forward_features(tokens, padding_mask)
        pooled = feats[:, 0] if self.pool == "cls" else masked_mean(feats, padding_mask)
        return self.head(pooled)


class BagOfTokens(nn.Module):
    """Baseline without attention or order: mean of token embeddings, then an MLP.

    ``attn``/``pe`` are accepted (and ignored) so recipes can share the ``model:`` node's keys.
    """

    pos_ndim = 1

    def __init__(self, *, vocab_size: int, num_classes: int, max_len: int = 512, dim: int = 128,
                 hidden: int = 256, drop: float = 0.0, attn: object = None, pe: object = None) -> None:
        super().__init__()
        self.num_classes, self.max_len = num_classes, max_len
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), Dropout(drop),
                                 nn.Linear(hidden, num_classes))
        _init(self)

    def no_weight_decay(self) -> set[str]:
        return set()

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^embed\."}

    def export_graphs(self) -> list:
        return [token_graph(self, vocab_size=self.embed.num_embeddings, max_len=self.max_len)]

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return self.mlp(masked_mean(self.embed(tokens), padding_mask))


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder translator with one joint vocabulary.

    Args:
        vocab_size, max_len: from the datamodule.
        dim, enc_depth, dec_depth, num_heads, mlp_ratio, drop: sizes.
        attn: self-attention factory (``attention=``); cross_attn: decoder cross-attention factory
            (defaults to ``attn``; set it to the additive config for Bahdanau cross-attention).
        pe: PE factory for source and target positions.
    """

    pos_ndim = 1

    def __init__(self, *, vocab_size: int, max_len: int = 256, dim: int = 128, enc_depth: int = 3,
                 dec_depth: int = 3, num_heads: int = 4, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, attn: Callable[..., nn.Module] = MultiHeadAttention,
                 cross_attn: Callable[..., nn.Module] | None = None,
                 pe: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        _check(dim, num_heads)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.src_embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        common = dict(dim=dim, num_heads=num_heads, attn=attn, pe=pe, ndim=self.pos_ndim, extent=(max_len,),
                      mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop)
        self.encoder = TransformerEncoder(depth=enc_depth, **common)
        self.decoder = TransformerDecoder(depth=dec_depth, cross_attn=cross_attn, **common)
        self.head = nn.Linear(dim, vocab_size)
        _init(self)

    def no_weight_decay(self) -> set[str]:
        return {f"{part}.{n}" for part in ("encoder", "decoder") for n in getattr(self, part).no_weight_decay()}

    def group_matcher(self, coarse: bool = False) -> dict:
        return encoder_group_matcher("encoder", stem=("src_embed.",))

    def export_graphs(self) -> list:
        return translation_graphs(self)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """Source memory ``(B, S, dim)``."""
        pos = sequence_coords(src.shape[1], device=src.device)
        return self.encoder(self.src_embed(src), pos, key_padding_mask=src_mask)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """Next-token logits ``(B, T, vocab)`` for every prefix of ``tgt_in`` (causal; padding at the
        end of ``tgt_in`` cannot reach earlier positions, so no target padding mask is needed)."""
        pos = sequence_coords(tgt_in.shape[1], device=tgt_in.device)
        h = self.decoder(self.tgt_embed(tgt_in), pos, memory, memory_padding_mask=src_mask)
        return self.head(h)

    def forward(self, src: Tensor, src_mask: Tensor | None, tgt_in: Tensor) -> Tensor:
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask)


class IncrementalDecoder:
    """Next-token log-probabilities of a :class:`Seq2SeqTransformer`, one new position per call.

    The decoder layers keep key/value caches (:meth:`core.nn.blocks.TransformerDecoder.step`), so each
    call computes only the newest position: decoding costs O(T) layer passes instead of O(T^2). Equal
    to ``model.decode`` up to float rounding (tested).

    Call ``step(prefix (R, t))`` with the full prefix (only its last token is read) and
    ``reorder(rows)`` after beam search re-selects rows.
    """

    def __init__(self, model: Seq2SeqTransformer, memory: Tensor, src_mask: Tensor | None) -> None:
        self.model, self.memory, self.src_mask = model, memory, src_mask
        self.cache = model.decoder.new_cache()

    @torch.no_grad()
    def step(self, prefix: Tensor) -> Tensor:
        done = len(self.cache[0][0])
        if done != prefix.shape[1] - 1:
            raise ValueError(f"prefix of length {prefix.shape[1]} does not continue the cached {done}.")
        h = self.model.decoder.step(self.model.tgt_embed(prefix[:, -1:]), self.memory, self.cache,
                                    memory_padding_mask=self.src_mask)  # (R, 1, C)
        return self.model.head(h)[:, -1].float().log_softmax(dim=-1)  # (R, V)

    def reorder(self, rows: Tensor) -> None:
        for self_cache, cross_cache in self.cache:
            self_cache.reorder(rows)
            cross_cache.reorder(rows)


@torch.no_grad()
def translate(model: nn.Module, src: Tensor, src_mask: Tensor | None, *, beam_size: int = 4,
              length_penalty: float = 1.0, max_len: int | None = None) -> Tensor:
    """Generated target ids ``(B, L)`` (``<pad>`` after ``</s>``); ``beam_size=1`` is greedy search."""
    memory = model.encode(src, src_mask)  # (B, S, C)
    max_len = int(max_len or model.max_len)
    if beam_size <= 1:
        dec = IncrementalDecoder(model, memory, src_mask)
        return greedy_search(dec.step, len(src), max_len=max_len, bos=BOS, eos=EOS, pad=PAD, device=src.device)
    mem = memory.repeat_interleave(beam_size, dim=0)  # (B*K, S, C): rows b*K + k
    mask = None if src_mask is None else src_mask.repeat_interleave(beam_size, dim=0)
    dec = IncrementalDecoder(model, mem, mask)
    out, _ = beam_search(dec.step, len(src), beam_size=beam_size, max_len=max_len, bos=BOS, eos=EOS, pad=PAD,
                         length_penalty=length_penalty, device=src.device, reorder=dec.reorder)
    return out
