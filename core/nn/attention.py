"""Attention modules sharing one call shape.

Every module here is called as::

    out = attn(x, context=None, *, key_padding_mask=None, causal=False,
               bias=None, rotary=None, cache=None)

* ``x``: queries ``(B, Nq, C)``; ``context``: keys/values ``(B, Nk, C)`` (``None`` = self-attention).
* ``key_padding_mask``: ``(B, Nk)`` bool, ``True`` marks padding keys (``torch.nn`` convention).
* ``causal``: query ``i`` sees keys ``j <= i + Nk - Nq`` (the queries are the last ``Nq`` positions, as
  when a decoder extends its cached keys; ``Nq == Nk`` is the usual triangle).
* ``bias``: additive logits ``(B|1, H|1, Nq, Nk)`` from a bias-type PE (ALiBi).
* ``rotary``: a :class:`core.nn.pe.Rotation` pair ``(rot_q, rot_k)`` from a rotary PE.
* ``cache``: a :class:`KVCache` for incremental decoding. Self-attention appends the new keys/values to
  it and attends over everything cached; cross-attention projects ``context`` once and reuses it.
  Keys are cached before rotation, so ``rot_k`` covers every cached position.

Capabilities are class attributes read by :mod:`core.nn.capabilities`: ``supports_bias`` (a logit
bias can be added) and ``supports_rotary``.

Attention weights are computed only on demand: set ``module.record = True`` (or use
:func:`record_attention`) and the module keeps its last map in ``module.last_attn``
``(B, H, Nq, Nk)``. The normal path never materialises the weights for dot-product attention:
it runs :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.dropout import Dropout
from core.nn.pe import Rotation

__all__ = [
    "AdditiveAttention",
    "AttentionBase",
    "KVCache",
    "LinearAttention",
    "MultiHeadAttention",
    "build_mask",
    "kernel_dtype",
    "record_attention",
]


def build_mask(
    nq: int,
    nk: int,
    *,
    key_padding_mask: Tensor | None,
    causal: bool,
    bias: Tensor | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor | None:
    """Combine padding, causal mask and logit bias into one additive mask ``(B|1, H|1, Nq, Nk)``.

    Returns ``None`` when there is nothing to mask, so SDPA can take its fastest kernel.
    """
    neg = torch.finfo(dtype).min
    parts = [] if bias is None else [bias.to(dtype)]
    if causal:  # the queries are the last nq of the nk positions
        keep = torch.ones(nq, nk, dtype=torch.bool, device=device).tril(diagonal=nk - nq)
        parts.append(torch.zeros(nq, nk, dtype=dtype, device=device).masked_fill(~keep, neg)[None, None])
    if key_padding_mask is not None:
        p = torch.zeros(key_padding_mask.shape, dtype=dtype, device=device)
        parts.append(p.masked_fill(key_padding_mask, neg)[:, None, None, :])
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return sum(parts[1:], parts[0]).clamp(min=neg)  # sums of two ``neg`` stay finite


# On CPU, PyTorch's bf16/fp16 flash-attention kernel has a large fixed cost: with few keys it is
# much slower than the fp32 kernel (forward + backward, B=16, H=4, head dim 36: 6.4 ms vs 0.6 ms at
# 17 keys, 29 vs 8.6 ms at 128, 40 vs 30 ms at 256); the two cross between 384 and 512 keys
# (depending on head count and size) and bf16 wins beyond (330 vs 410 ms at 1024). Below this many
# keys, low-precision queries run the fp32 kernel. Measured by ``python bench/attention.py --kernels``.
CPU_LOWP_FLASH_MIN_KEYS = 384


def kernel_dtype(q: Tensor, num_keys: int) -> torch.dtype:
    """The dtype the SDPA kernel runs in: ``q.dtype``, or fp32 for short bf16/fp16 sequences on CPU."""
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and num_keys < CPU_LOWP_FLASH_MIN_KEYS:
        return torch.float32
    return q.dtype


class KVCache:
    """Keys and values ``(B, H, T, Dh)`` of one attention module during incremental decoding."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return self.positions

    @property
    def positions(self) -> int:
        """Cached positions; unlike ``len()``, which must return a Python int, it stays symbolic under
        ``torch.export``, so an exported decoding step keeps a dynamic cache length."""
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions; returns all cached keys and values."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def reorder(self, rows: Tensor) -> None:
        """Keep batch rows ``rows`` (beam search re-selecting its hypotheses)."""
        if self.k is not None:
            self.k, self.v = self.k[rows], self.v[rows]


class AttentionBase(nn.Module):
    """Shared projections, head split and the on-demand map recording."""

    supports_bias = True
    supports_rotary = True

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)  # one matmul for self-attention (timm layout)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = Dropout(proj_drop)
        self.record = False
        self.last_attn: Tensor | None = None

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape  # (B, N, C) -> (B, H, N, Dh)
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _project(self, x: Tensor, context: Tensor | None, rotary: tuple[Rotation, Rotation] | None,
                 cache: KVCache | None = None):
        if context is None:
            q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.append(k, v)
        else:  # cross-attention: the same weights, queries from x, keys/values from context
            w, b = self.qkv.weight, self.qkv.bias
            q = self._heads(F.linear(x, w[: self.dim], None if b is None else b[: self.dim]))
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v
            else:
                kv = F.linear(context, w[self.dim :], None if b is None else b[self.dim :])
                k, v = (self._heads(t) for t in kv.chunk(2, dim=-1))
                if cache is not None:
                    cache.append(k, v)
        if rotary is not None:
            q, k = rotary[0].apply(q), rotary[1].apply(k)
        return q, k, v

    def _merge(self, o: Tensor) -> Tensor:
        b, _, n, _ = o.shape  # (B, H, N, Dh) -> (B, N, C)
        return self.proj_drop(self.proj(o.transpose(1, 2).reshape(b, n, self.dim)))


class MultiHeadAttention(AttentionBase):
    """Scaled dot-product multi-head attention on :func:`F.scaled_dot_product_attention`."""

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        bias: Tensor | None = None,
        rotary: tuple[Rotation, Rotation] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        q, k, v = self._project(x, context, rotary, cache)
        nq, nk = q.shape[-2], k.shape[-2]
        drop = self.attn_drop if self.training else 0.0
        if self.record:
            mask = build_mask(nq, nk, key_padding_mask=key_padding_mask, causal=causal, bias=bias,
                              device=q.device, dtype=q.dtype)
            logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            if mask is not None:
                logits = logits + mask
            attn = logits.softmax(dim=-1)
            self.last_attn = attn.detach()
            o = F.dropout(attn, drop, self.training) @ v
            return self._merge(o)
        sdpa = _sdpa_eager if key_padding_mask is not None else _sdpa
        return self._merge(sdpa(q, k, v, key_padding_mask, causal, bias, drop))


def _sdpa(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool, bias: Tensor | None,
          drop: float) -> Tensor:
    """SDPA on ``(B, H, N, Dh)`` heads with the combined mask, in :func:`kernel_dtype`."""
    nq, nk = q.shape[-2], k.shape[-2]
    out_dtype, dtype = q.dtype, kernel_dtype(q, nk)
    # autocast would cast fp32 operands of SDPA back to bf16; the kernel dtype is chosen here
    with torch.autocast(q.device.type, enabled=False) if dtype != out_dtype else contextlib.nullcontext():
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        if key_padding_mask is None and bias is None and causal and nq == nk:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:
            mask = build_mask(nq, nk, key_padding_mask=key_padding_mask, causal=causal, bias=bias,
                              device=q.device, dtype=dtype)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
    return o.to(out_dtype)


# torch 2.11's inductor fails on SDPA with a padding mask once sequence lengths vary (dynamic
# shapes: wrong saved-mask strides or "cannot determine truth value of Relational", cf.
# pytorch/pytorch#165506), so under ``torch.compile`` padded attention runs eagerly between graphs.
_sdpa_eager = torch.compiler.disable(_sdpa)


class AdditiveAttention(AttentionBase):
    """Additive (Bahdanau) attention per head: ``score = w^T tanh(q + k)``.

    ``q`` and ``k`` are the usual per-head projections (RoPE rotates them first when asked);
    a bias-type PE adds to the scores. Memory is ``O(B * H * Nq * Nk * Dh)``: meant for
    short sequences (patch grids, sentences), not for long audio.
    """

    def __init__(self, dim: int, num_heads: int = 8, **kwargs) -> None:
        super().__init__(dim, num_heads, **kwargs)
        self.score = nn.Parameter(torch.randn(num_heads, self.head_dim) / math.sqrt(self.head_dim))

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        bias: Tensor | None = None,
        rotary: tuple[Rotation, Rotation] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        q, k, v = self._project(x, context, rotary, cache)
        # (B, H, Nq, 1, Dh) + (B, H, 1, Nk, Dh) -> (B, H, Nq, Nk)
        logits = torch.einsum("bhqkd,hd->bhqk", torch.tanh(q.unsqueeze(3) + k.unsqueeze(2)), self.score)
        mask = build_mask(q.shape[-2], k.shape[-2], key_padding_mask=key_padding_mask, causal=causal,
                          bias=bias, device=q.device, dtype=logits.dtype)
        if mask is not None:
            logits = logits + mask
        attn = logits.softmax(dim=-1)
        if self.record:
            self.last_attn = attn.detach()
        o = F.dropout(attn, self.attn_drop if self.training else 0.0, self.training) @ v
        return self._merge(o)


class LinearAttention(AttentionBase):
    """Linear (kernel) attention, Katharopoulos et al. 2020: ``phi(x) = elu(x) + 1``.

    Cost and memory are ``O(N * Dh^2)`` per head instead of ``O(N^2)``. Limits:

    * key-padding masks are exact (padded keys are removed from the sums);
    * ``causal=True`` uses prefix sums, exact, for self-attention (``Nq == Nk``);
    * logit biases (ALiBi) cannot be expressed and raise ``ValueError``;
    * rotary PE rotates ``phi(q)``, ``phi(k)`` in the numerator only (as in RoFormer's linear
      variant), keeping the normaliser positive;
    * attention maps (``record``) are materialised from the kernel scores, ``O(N^2)``, for plots.
    """

    supports_bias = False

    def __init__(self, dim: int, num_heads: int = 8, *, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(dim, num_heads, **kwargs)
        self.eps = eps

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        bias: Tensor | None = None,
        rotary: tuple[Rotation, Rotation] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        if bias is not None:
            raise ValueError("LinearAttention cannot apply a logit bias (e.g. pe=alibi).")
        q, k, v = self._project(x, context, None, cache)
        q, k = F.elu(q) + 1, F.elu(k) + 1  # (B, H, N, Dh), positive features
        if key_padding_mask is not None:
            k = k.masked_fill(key_padding_mask[:, None, :, None], 0.0)
        qr, kr = (q, k) if rotary is None else (rotary[0].apply(q), rotary[1].apply(k))
        if causal and q.shape[-2] == 1:
            causal = False  # one query at the end of the keys sees them all
        if causal:
            if q.shape[-2] != k.shape[-2]:
                raise ValueError("LinearAttention supports causal=True only for self-attention.")
            kv = torch.einsum("bhnd,bhne->bhnde", kr, v).cumsum(dim=2)  # (B, H, N, Dh, Dh)
            num = torch.einsum("bhnd,bhnde->bhne", qr, kv)
            den = torch.einsum("bhnd,bhnd->bhn", q, k.cumsum(dim=2))
        else:
            kv = torch.einsum("bhnd,bhne->bhde", kr, v)  # (B, H, Dh, Dh)
            num = torch.einsum("bhnd,bhde->bhne", qr, kv)
            den = torch.einsum("bhnd,bhd->bhn", q, k.sum(dim=2))
        norm = den.unsqueeze(-1) + self.eps
        o = num / norm
        if self.record:  # the same normaliser as the output, so each row covers the keys its query sees
            s = qr @ kr.transpose(-2, -1)
            self.last_attn = ((s.tril() if causal else s) / norm).detach()
        return self._merge(o)


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, AttentionBase]]:
    """Record attention maps of every attention module in ``model`` while the block runs.

    Yields ``{module_name: module}``; read ``module.last_attn`` after a forward pass.
    """
    mods = {n: m for n, m in model.named_modules() if isinstance(m, AttentionBase)}
    for m in mods.values():
        m.record = True
    try:
        yield mods
    finally:
        for m in mods.values():
            m.record = False
