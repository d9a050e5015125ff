"""Rotary encodings: RoPE (1-D, axial 2-D) with its extrapolation scalings, and RoPE-Mixed.

Extrapolation. A :class:`RoPE` remembers, per axis, one more than the largest position it saw in
training mode (the ``trained_extent`` buffer, saved in checkpoints). In eval mode, on inputs that
reach past it, ``scaling`` chooses what happens; with ``s = L / L_train`` (``L``: one more than the
largest position of the input, per axis):

* ``none``: the trained angles simply continue (extrapolation);
* ``linear``: position interpolation (Chen et al. 2023), positions times ``1 / s``, so every angle
  stays inside the trained range;
* ``ntk``: NTK-aware base scaling, ``base * s ** (d / (d - 2))`` (``d`` rotary channels per axis):
  the highest frequency is kept, the lowest is interpolated by exactly ``1 / s``.

Training never scales, and the scaling is read at every call, so one trained model is evaluated
all three ways (``mas-eval ... override=['model.pe.scaling=ntk']``). Scaling is computed from the
positions one call sees: it suits encoders that see the whole input at once, not step-by-step
decoding with a cache (its keys were rotated at earlier lengths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.pe.base import PositionalEncoding

__all__ = ["RoPE", "RoPEMixed", "Rotation"]

SCALINGS = ("none", "linear", "ntk")


@dataclass
class Rotation:
    """Rotation angles for RoPE: ``cos``/``sin`` of shape ``(B|1, 1|H, N, Dh)``, ``blocks`` axes."""

    cos: Tensor
    sin: Tensor
    blocks: int

    def apply(self, t: Tensor) -> Tensor:
        """Rotate ``t: (B, H, N, Dh)``; pairs are ``(i, i + d/2)`` inside each axis block."""
        shape = t.shape
        tb = t.reshape(*shape[:-1], self.blocks, 2, shape[-1] // (2 * self.blocks))
        rot = torch.stack([-tb[..., 1, :], tb[..., 0, :]], dim=-2).reshape(shape)
        return t * self.cos.to(t.dtype) + rot * self.sin.to(t.dtype)


def _rotation(ang: Tensor, prefix: int, blocks: int) -> Rotation:
    """Angles ``(B|1, 1|H, N, Dh)`` of every channel -> a :class:`Rotation`; ``prefix`` tokens get angle 0."""
    if prefix:
        ang = F.pad(ang, (0, 0, prefix, 0))
    return Rotation(ang.cos(), ang.sin(), blocks)


class RoPE(PositionalEncoding):
    """Rotary PE, 1-D or axial 2-D (head channels split into one block per axis).

    Args:
        base: frequency base, ``theta_i = base ** (-2i / d)`` per axis block of ``d`` channels.
        scaling: ``none``, ``linear`` or ``ntk``: what eval-mode inputs past the trained extent get
            (module docstring).
    """

    kind = "rotary"

    def __init__(self, dim: int, num_heads: int, ndim: int, *, base: float = 10000.0, scaling: str = "none",
                 **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        head_dim = dim // num_heads
        if head_dim % (2 * ndim) != 0:
            raise ValueError(f"RoPE needs the head dim {head_dim} divisible by {2 * ndim} for {ndim}-D positions.")
        if scaling not in SCALINGS:
            raise ValueError(f"pe.scaling={scaling!r}: choose one of {', '.join(SCALINGS)}.")
        self.base, self.head_dim, self.scaling = base, head_dim, scaling
        self.register_buffer("trained_extent", torch.zeros(ndim))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints written before the extent was tracked: unknown (0) means "never scale"
        state_dict.setdefault(prefix + "trained_extent", torch.zeros(self.ndim))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def axis_scales(self, pos: Tensor) -> Tensor:
        """``s = L / L_train`` per axis for positions ``pos`` (already ``coord_scale``d); 1 where the
        input stays inside the trained extent, the extent is unknown, or the module is training."""
        length = pos.detach().flatten(0, -2).amax(0) + 1  # (P,)
        if self.training:
            self.trained_extent.copy_(torch.maximum(self.trained_extent, length.to(self.trained_extent)))
            return torch.ones_like(length)
        known = self.trained_extent.to(length) > 0
        return torch.where(known, (length / self.trained_extent.to(length).clamp_min(1)).clamp_min(1.0), 1.0)

    def frequencies(self, scales: Tensor) -> Tensor:
        """``(P, d/2)`` angular frequencies per axis block, after the NTK base scaling if chosen."""
        d = self.head_dim // self.ndim
        exponent = torch.arange(0, d, 2, device=scales.device, dtype=torch.float32) / d  # (d/2,)
        if self.scaling == "ntk":
            base = self.base * scales.float() ** (d / (d - 2)) if d > 2 else self.base * scales.float()
            return base[:, None] ** -exponent
        return (self.base ** -exponent).expand(self.ndim, -1)

    def rotation(self, pos: Tensor, prefix: int = 0) -> Rotation:
        """Angles for positions ``pos``; ``prefix`` leading tokens get angle 0 (no rotation)."""
        pos = self._check(pos).float()
        scales = self.axis_scales(pos)
        if self.scaling == "linear":
            pos = pos / scales
        ang = pos.unsqueeze(-1) * self.frequencies(scales)  # (B|1, N, P, d/2)
        ang = torch.cat([ang, ang], dim=-1).flatten(-2)  # (B|1, N, Dh): per block [a, a]
        return _rotation(ang[:, None], prefix, self.ndim)

    def attn_kwargs(self, pos_q: Tensor, pos_k: Tensor | None = None, prefix: int = 0) -> dict:
        rq = self.rotation(pos_q, prefix)
        rk = rq if pos_k is None or pos_k is pos_q else self.rotation(pos_k, prefix)
        return {"rotary": (rq, rk)}


class RoPEMixed(PositionalEncoding):
    """RoPE-Mixed (Heo et al. 2024, "Rotary Position Embedding for Vision Transformer"): every head
    rotates its ``Dh/2`` channel pairs ``(i, i + Dh/2)`` by ``f_{h,i} . p``, with a learned frequency
    vector ``f_{h,i}`` per head and pair, so one pair can mix the axes (diagonals), which axial RoPE
    cannot.

    Initialisation: the axial magnitudes ``base ** (-4j / Dh)``, ``j < Dh/4``; head ``h`` draws an
    angle ``phi_h`` and its first ``Dh/4`` pairs point along ``phi_h``, the others along
    ``phi_h + pi/2``. With every ``phi_h = 0`` this is axial RoPE up to the order of the channel
    pairs. The frequencies are shared by the layers of one encoder (the paper learns them per layer)
    and take no weight decay (the encoder's ``no_weight_decay`` lists every PE parameter).
    """

    kind = "rotary"
    serves = (2,)

    def __init__(self, dim: int, num_heads: int, ndim: int, *, base: float = 10.0, **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        head_dim = dim // num_heads
        if head_dim % 4 != 0:
            raise ValueError(f"RoPE-Mixed needs the head dim {head_dim} divisible by 4.")
        self.base, self.head_dim = base, head_dim
        quarter = head_dim // 4
        mag = base ** (-torch.arange(quarter, dtype=torch.float32) * 4 / head_dim)  # (Dh/4,)
        phi = torch.rand(num_heads, 1) * 2 * math.pi  # (H, 1)
        angle = torch.cat([phi.expand(-1, quarter), phi.expand(-1, quarter) + math.pi / 2], dim=1)  # (H, Dh/2)
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (H, Dh/2, 2): (row, column)
        self.freqs = nn.Parameter(mag.repeat(2)[None, :, None] * direction)  # (H, Dh/2, 2)

    def rotation(self, pos: Tensor, prefix: int = 0) -> Rotation:
        """Per-head angles ``(B|1, H, N, Dh)`` for positions ``pos (B|1, N, 2)``."""
        pos = self._check(pos).float()
        ang = torch.einsum("bnp,hjp->bhnj", pos, self.freqs.float())  # (B|1, H, N, Dh/2)
        return _rotation(torch.cat([ang, ang], dim=-1), prefix, 1)

    def attn_kwargs(self, pos_q: Tensor, pos_k: Tensor | None = None, prefix: int = 0) -> dict:
        rq = self.rotation(pos_q, prefix)
        rk = rq if pos_k is None or pos_k is pos_q else self.rotation(pos_k, prefix)
        return {"rotary": (rq, rk)}
