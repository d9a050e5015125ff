"""Positional encodings on real-valued coordinates.

A model hands its tokens ``x: (B, N, C)`` and their coordinates ``pos: (B|1, N, P)``:
text ``P = 1`` (token index), image patches ``P = 2`` (row, column), audio frames ``P = 1``
(time in seconds, multiplied by ``coord_scale`` so one unit is one reference frame).

Every encoding has the same constructor shape, so a config can hold a ``_partial_`` of any of
them and each model finishes it::

    pe = factory(dim=C, num_heads=H, ndim=P, coord_scale=1.0, extent=(16, 16))

and the same three hooks, of which it implements the one matching its ``kind``:

* ``add(x, pos)``: additive encodings return ``x + embedding(pos)``, others return ``x``;
* ``attn_kwargs(pos_q, pos_k)``: rotary encodings give ``rotary=(Rotation, Rotation)``, bias
  encodings give ``bias=(B|1, H, Nq, Nk)``, others ``{}``. Attention modules take these kwargs.

Conventions (pinned by tests against closed-form values):

* Sinusoidal follows MAE: per axis, channels ``[sin(p * w_i), cos(p * w_i)]`` concatenated (not
  interleaved), ``w_i = base ** (-i / (d/2))`` for ``i < d/2`` (frequency divisor ``d/2``, as
  MAE; Whisper uses ``d/2 - 1``), ``base = 10000``. With ``P`` axes the channels split into ``P``
  equal blocks; :class:`SinusoidalPE` puts the column block first and the row block second, as
  MAE's table does (``axis_order="rows_first"`` gives the other order). :func:`sincos` itself
  encodes the axes in the order given.
* RoPE rotates "half" pairs ``(i, i + d/2)`` as GPT-NeoX, ``theta_i = base ** (-2i / d)``; the axial
  2-D form splits each head's channels into one block per axis, rows first.
* ALiBi uses the paper's head slopes; bias ``-slope * |p_q - p_k|`` (Euclidean distance in 2-D).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.capabilities import check_compatible

__all__ = [
    "ALiBi",
    "LearnedPE",
    "NoPE",
    "PositionalEncoding",
    "RoPE",
    "Rotation",
    "SinusoidalPE",
    "alibi_slopes",
    "grid_coords",
    "resample_table",
    "sincos",
    "sequence_coords",
]


def sequence_coords(n: int, device: torch.device | None = None, start: int = 0) -> Tensor:
    """Token-index coordinates ``(1, N, 1)``."""
    return torch.arange(start, start + n, device=device, dtype=torch.float32)[None, :, None]


def grid_coords(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Row-major (row, column) coordinates of an ``h x w`` grid, ``(1, h*w, 2)``."""
    r, c = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([r, c], dim=-1).reshape(1, h * w, 2).float()


def sincos(pos: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of coordinates ``(..., P)`` into ``(..., dim)``; see module docstring."""
    p = pos.shape[-1]
    if dim % (2 * p) != 0:
        raise ValueError(f"sinusoidal PE needs dim={dim} divisible by 2 * {p} coordinate axes.")
    d = dim // p
    omega = base ** (-torch.arange(d // 2, device=pos.device, dtype=torch.float64) / (d / 2))
    ang = pos.double().unsqueeze(-1) * omega  # (..., P, d/2)
    emb = torch.cat([ang.sin(), ang.cos()], dim=-1)  # (..., P, d)
    return emb.flatten(-2).float()


@dataclass
class Rotation:
    """Rotation angles for RoPE: ``cos``/``sin`` of shape ``(B|1, 1, N, Dh)``, ``blocks`` axes."""

    cos: Tensor
    sin: Tensor
    blocks: int

    def apply(self, t: Tensor) -> Tensor:
        """Rotate ``t: (B, H, N, Dh)``; pairs are ``(i, i + d/2)`` inside each axis block."""
        shape = t.shape
        tb = t.reshape(*shape[:-1], self.blocks, 2, shape[-1] // (2 * self.blocks))
        rot = torch.stack([-tb[..., 1, :], tb[..., 0, :]], dim=-2).reshape(shape)
        return t * self.cos.to(t.dtype) + rot * self.sin.to(t.dtype)


class PositionalEncoding(nn.Module):
    """Base: identity hooks. Capabilities (see :mod:`core.nn.capabilities`) are class attributes:
    ``kind`` (``additive``, ``rotary``, ``bias``, ``none``), ``serves`` (coordinate dimensionalities,
    ``None`` for any; ``only_ndim=`` narrows it to one) and ``causal_only``."""

    kind = "none"
    serves: tuple[int, ...] | None = None
    causal_only = False

    def __init__(self, dim: int, num_heads: int, ndim: int, *, coord_scale: float = 1.0,
                 extent: tuple[int, ...] | None = None, only_ndim: int | None = None) -> None:
        super().__init__()
        self.only_ndim = only_ndim
        check_compatible(None, self, ndim=ndim)
        self.dim, self.num_heads, self.ndim, self.coord_scale = dim, num_heads, ndim, coord_scale
        self.extent = tuple(extent) if extent is not None else None

    def _check(self, pos: Tensor) -> Tensor:
        if pos.shape[-1] != self.ndim:
            raise ValueError(f"expected {self.ndim}-D positions, got shape {tuple(pos.shape)}.")
        return pos * self.coord_scale

    def add(self, x: Tensor, pos: Tensor, prefix: int = 0) -> Tensor:
        """Add the embedding of ``pos`` to the last ``N`` tokens of ``x`` (``prefix`` tokens such as a
        class token come first and get none)."""
        emb = self.embed(pos)  # (B|1, N, C), or None
        if emb is None:
            return x
        emb = emb.to(x.dtype)
        if prefix:
            emb = F.pad(emb, (0, 0, prefix, 0))
        return x + emb

    def embed(self, pos: Tensor) -> Tensor | None:
        """The additive embedding ``(B|1, N, C)`` of ``pos``; ``None`` for encodings that add nothing."""
        return None

    def attn_kwargs(self, pos_q: Tensor, pos_k: Tensor | None = None, prefix: int = 0) -> dict:
        """Keyword arguments for the attention modules of a self-attention stack."""
        return {}


class NoPE(PositionalEncoding):
    """No positional information (the control that shows what PE buys)."""


class SinusoidalPE(PositionalEncoding):
    """Fixed sinusoidal embedding added to the tokens: 1-D text, 2-D patch grid, audio time-frame."""

    kind = "additive"
    AXIS_ORDERS = ("columns_first", "rows_first")

    def __init__(self, dim: int, num_heads: int, ndim: int, *, base: float = 10000.0,
                 axis_order: str = "columns_first", **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        if dim % (2 * ndim) != 0:
            raise ValueError(f"sinusoidal PE needs dim={dim} divisible by {2 * ndim} for {ndim}-D positions.")
        if axis_order not in self.AXIS_ORDERS:
            raise ValueError(f"axis_order={axis_order!r}: choose one of {', '.join(self.AXIS_ORDERS)}.")
        self.base, self.axis_order = base, axis_order

    def embed(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.axis_order == "columns_first":  # MAE: the last coordinate axis gets the first block
            pos = pos.flip(-1)
        return sincos(pos, self.dim, self.base)


def resample_table(table: Tensor, size: tuple[int, ...]) -> Tensor:
    """A learned table ``(*extent, C)`` resampled to ``(*size, C)``: (bi)linear, ``align_corners=True``,
    so values at matching grid points are kept."""
    t = table.movedim(-1, 0)[None].float()  # (1, C, *extent)
    mode = "linear" if table.ndim == 2 else "bilinear"
    return F.interpolate(t, size=tuple(size), mode=mode, align_corners=True)[0].movedim(0, -1).to(table.dtype)


class LearnedPE(PositionalEncoding):
    """Learned absolute embedding table over a grid of ``extent`` positions (1-D or 2-D).

    Coordinates (after ``coord_scale``) are rounded to table indices. When a sequence runs past the
    table (1-D) or a new grid differs from the trained one (2-D), the table is resampled with
    bilinear interpolation, ``align_corners=True`` (values at matching grid points are kept).
    """

    kind = "additive"
    serves = (1, 2)

    def __init__(self, dim: int, num_heads: int, ndim: int, *, extent: tuple[int, ...] | None = None,
                 init_std: float = 0.02, **kw) -> None:
        if extent is None:
            raise ValueError("learned PE needs the model's maximum length or grid size (extent).")
        extent = tuple(int(e) for e in extent)
        super().__init__(dim, num_heads, ndim, extent=extent, **kw)
        if len(extent) != ndim:
            raise ValueError(f"learned PE extent {extent} does not match {ndim}-D positions.")
        self.table = nn.Parameter(torch.randn(*extent, dim) * init_std)

    def resampled(self, size: tuple[int, ...]) -> Tensor:
        """The table resampled to ``size`` along each axis, ``(*size, C)``."""
        return resample_table(self.table, size)

    def embed(self, pos: Tensor) -> Tensor:
        idx = self._check(pos).round().long()  # (B|1, N, P)
        need = tuple(int(idx[..., a].max()) + 1 for a in range(self.ndim))
        if self.ndim == 1 and need[0] <= self.extent[0]:
            table = self.table
        elif self.ndim == 2 and need == self.extent:
            table = self.table
        else:
            if self.ndim == 1:
                warnings.warn(f"sequence of {need[0]} positions exceeds the learned PE table "
                              f"({self.extent[0]}); interpolating.", stacklevel=2)
            table = self.resampled(need)
        if self.ndim == 1:
            return table[idx[..., 0]]
        return table[idx[..., 0], idx[..., 1]]


class RoPE(PositionalEncoding):
    """Rotary PE, 1-D or axial 2-D (head channels split into one block per axis)."""

    kind = "rotary"

    def __init__(self, dim: int, num_heads: int, ndim: int, *, base: float = 10000.0, **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        head_dim = dim // num_heads
        if head_dim % (2 * ndim) != 0:
            raise ValueError(f"RoPE needs the head dim {head_dim} divisible by {2 * ndim} for {ndim}-D positions.")
        self.base = base
        self.head_dim = head_dim

    def rotation(self, pos: Tensor, prefix: int = 0) -> Rotation:
        """Angles for positions ``pos``; ``prefix`` leading tokens get angle 0 (no rotation)."""
        pos = self._check(pos)
        d = self.head_dim // self.ndim
        theta = self.base ** (-torch.arange(0, d, 2, device=pos.device, dtype=torch.float32) / d)
        ang = pos.float().unsqueeze(-1) * theta  # (B|1, N, P, d/2)
        ang = torch.cat([ang, ang], dim=-1).flatten(-2)  # (B|1, N, Dh): per block [a, a]
        if prefix:
            ang = F.pad(ang, (0, 0, prefix, 0))
        return Rotation(ang.cos()[:, None], ang.sin()[:, None], self.ndim)

    def attn_kwargs(self, pos_q: Tensor, pos_k: Tensor | None = None, prefix: int = 0) -> dict:
        rq = self.rotation(pos_q, prefix)
        rk = rq if pos_k is None or pos_k is pos_q else self.rotation(pos_k, prefix)
        return {"rotary": (rq, rk)}


def alibi_slopes(num_heads: int) -> Tensor:
    """Head slopes of ALiBi (Press et al. 2022), including the rule for non-powers of two."""

    def pow2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        s = pow2(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        s = pow2(closest) + pow2(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(s, dtype=torch.float32)


class ALiBi(PositionalEncoding):
    """Attention with linear biases: ``-slope_h * distance(p_q, p_k)`` added to the logits.

    Args:
        direction: in ``[0, 1]``; 0 is the paper's symmetric bias. A distance alone cannot tell left
            from right (or, on a grid, a digit from its 180-degree rotation), which bidirectional
            encoders need. With ``direction > 0`` head ``h`` gets a preferred direction ``u_h``
            (alternating +/- in 1-D, angles ``2 pi h / H`` in 2-D) and the bias becomes
            ``-slope_h * (|d| - direction * d . u_h)`` with ``d = p_k - p_q``: still relative and
            translation-invariant, never positive, and a head looks more cheaply one way than the other.
        slope_scale: multiplies the slopes (the paper's slopes suit sequences of hundreds of tokens;
            a 4x4 patch grid barely feels them).

    Defaults (``None``): the paper's form in 1-D (``direction=0``, ``slope_scale=1``); on 2-D grids
    ``direction=1``, ``slope_scale=4``. On the digits ViT, the symmetric form reached val/test
    accuracy 0.73/0.81, the directional one with 4x slopes 0.98/0.98 (same budget).
    """

    kind = "bias"

    def __init__(self, dim: int, num_heads: int, ndim: int, *, direction: float | None = None,
                 slope_scale: float | None = None, **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        direction = (1.0 if ndim == 2 else 0.0) if direction is None else direction
        slope_scale = (4.0 if ndim == 2 else 1.0) if slope_scale is None else slope_scale
        if not 0.0 <= direction <= 1.0:
            raise ValueError(f"pe.direction={direction} must be in [0, 1].")
        self.direction = float(direction)
        self.register_buffer("slopes", alibi_slopes(num_heads) * slope_scale, persistent=False)
        h = torch.arange(num_heads, dtype=torch.float32)
        if ndim == 1:
            u = torch.where(h % 2 == 0, 1.0, -1.0)[:, None]
        else:
            ang = 2 * math.pi * h / num_heads
            u = torch.stack([torch.cos(ang), torch.sin(ang)] + [torch.zeros_like(ang)] * (ndim - 2), dim=-1)
        self.register_buffer("directions", u, persistent=False)  # (H, P)

    def bias(self, pos_q: Tensor, pos_k: Tensor) -> Tensor:
        pq, pk = self._check(pos_q).float(), self._check(pos_k).float()
        dist = torch.cdist(pq, pk) if self.ndim > 1 else (pq - pk.transpose(-2, -1)).abs()
        dist = dist[:, None]  # (B|1, 1, Nq, Nk)
        if self.direction > 0:
            d = pk[:, None, :, :] - pq[:, :, None, :]  # (B|1, Nq, Nk, P): d = p_k - p_q
            proj = torch.einsum("bqkp,hp->bhqk", d, self.directions.to(d.device))
            dist = dist - self.direction * proj
        return -self.slopes.to(dist.device)[None, :, None, None] * dist  # (B|1, H, Nq, Nk)

    def attn_kwargs(self, pos_q: Tensor, pos_k: Tensor | None = None, prefix: int = 0) -> dict:
        b = self.bias(pos_q, pos_q if pos_k is None else pos_k)
        return {"bias": F.pad(b, (prefix, 0, prefix, 0)) if prefix else b}  # prefix tokens: no bias
