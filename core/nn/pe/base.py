"""The positional-encoding interface (coordinates in, hooks out) and the control without one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.capabilities import check_compatible

__all__ = ["NoPE", "PositionalEncoding", "grid_coords", "sequence_coords", "sincos"]


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
