"""Pre-norm transformer encoder and decoder built from any attention variant and any PE.

Attention variants and PEs arrive as factories (Hydra ``_partial_`` objects or classes)::

    enc = TransformerEncoder(dim=192, depth=6, num_heads=3, attn=MultiHeadAttention,
                             pe=partial(RoPE), ndim=2, extent=(8, 8))
    y = enc(x, pos, key_padding_mask=None)        # x (B, N, C), pos (B|1, N, P)

Parameter names follow timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), so timm ViT weights map onto an encoder one to one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from core.attention import AttentionBase, MultiHeadAttention
from core.dropout import Dropout
from core.pe import NoPE, PositionalEncoding

AttnFactory = Callable[..., AttentionBase]
PEFactory = Callable[..., PositionalEncoding]

__all__ = ["DecoderLayer", "EncoderLayer", "TransformerDecoder", "TransformerEncoder", "check_attention_pe"]


def check_attention_pe(attn: AttentionBase, pe: PositionalEncoding) -> None:
    """Refuse an attention/PE pair that cannot work, with one sentence naming the keys."""
    if pe.kind == "bias" and not getattr(attn, "supports_bias", True):
        raise ValueError(f"attention={type(attn).__name__} cannot apply the logit bias of "
                         f"pe={type(pe).__name__}; choose another attention= or pe=.")


class EncoderLayer(nn.Module):
    """``x + drop_path(attn(norm1(x)))``, then ``x + drop_path(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, *, attn: AttnFactory = MultiHeadAttention,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp(dim, mlp_ratio, drop)

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None, causal: bool = False,
                **attn_kwargs) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask=key_padding_mask,
                                         causal=causal, **attn_kwargs))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder memory, MLP; all pre-norm."""

    def __init__(self, dim: int, num_heads: int, *, attn: AttnFactory = MultiHeadAttention,
                 cross_attn: AttnFactory | None = None, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm_x = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn = (cross_attn or attn)(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                                 proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp(dim, mlp_ratio, drop)

    def forward(self, x: Tensor, memory: Tensor, *, key_padding_mask: Tensor | None = None,
                memory_padding_mask: Tensor | None = None, **attn_kwargs) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask=key_padding_mask, causal=True,
                                         **attn_kwargs))
        x = x + self.drop_path(self.cross_attn(self.norm_x(x), memory, key_padding_mask=memory_padding_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def mlp(dim: int, mlp_ratio: float, drop: float) -> Mlp:
    """timm's ``Mlp`` (``fc1``, ``act``, ``fc2``) with :class:`core.dropout.Dropout` layers."""
    m = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
    m.drop1, m.drop2 = Dropout(drop), Dropout(drop)
    return m


def _drop_paths(drop_path: float, depth: int) -> list[float]:
    return [float(r) for r in torch.linspace(0, drop_path, depth)]  # stochastic depth decay rule


class TransformerEncoder(nn.Module):
    """A stack of :class:`EncoderLayer` with a positional encoding and a final norm.

    Args:
        dim, depth, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_path: as in timm.
        attn: attention factory (``attention=`` in the config).
        pe: PE factory (``pe=`` in the config), or ``None`` for no PE.
        ndim: dimensionality of the token coordinates (1 text/audio, 2 patches).
        coord_scale: multiplies coordinates before the PE (e.g. frames per second for audio).
        extent: largest length / grid the PE must cover (learned tables).
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, attn: AttnFactory = MultiHeadAttention,
                 pe: PEFactory | None = None, ndim: int = 1, coord_scale: float = 1.0,
                 extent: tuple[int, ...] | None = None, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 final_norm: bool = True) -> None:
        super().__init__()
        self.pe = (pe or NoPE)(dim=dim, num_heads=num_heads, ndim=ndim, coord_scale=coord_scale, extent=extent)
        self.blocks = nn.ModuleList(
            EncoderLayer(dim, num_heads, attn=attn, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                         attn_drop=attn_drop, drop_path=dp)
            for dp in _drop_paths(drop_path, depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6) if final_norm else nn.Identity()
        if self.blocks:
            check_attention_pe(self.blocks[0].attn, self.pe)

    def forward(self, x: Tensor, pos: Tensor, *, key_padding_mask: Tensor | None = None,
                causal: bool = False, num_prefix: int = 0) -> Tensor:
        """``x`` (B, num_prefix + N, C); ``pos`` (B|1, N, P) for the non-prefix tokens. Prefix
        tokens (a class token) get no additive embedding, no rotation and no bias."""
        x = self.pe.add(x, pos, num_prefix)
        kw = self.pe.attn_kwargs(pos, prefix=num_prefix)
        for blk in self.blocks:
            x = blk(x, key_padding_mask=key_padding_mask, causal=causal, **kw)
        return self.norm(x)


class TransformerDecoder(nn.Module):
    """A stack of :class:`DecoderLayer`; the PE acts on target positions (self-attention only)."""

    def __init__(self, *, dim: int, depth: int, num_heads: int, attn: AttnFactory = MultiHeadAttention,
                 cross_attn: AttnFactory | None = None, pe: PEFactory | None = None, ndim: int = 1,
                 coord_scale: float = 1.0, extent: tuple[int, ...] | None = None, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.pe = (pe or NoPE)(dim=dim, num_heads=num_heads, ndim=ndim, coord_scale=coord_scale, extent=extent)
        self.blocks = nn.ModuleList(
            DecoderLayer(dim, num_heads, attn=attn, cross_attn=cross_attn, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop, drop_path=dp)
            for dp in _drop_paths(drop_path, depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if self.blocks:
            check_attention_pe(self.blocks[0].attn, self.pe)

    def forward(self, x: Tensor, pos: Tensor, memory: Tensor, *, key_padding_mask: Tensor | None = None,
                memory_padding_mask: Tensor | None = None) -> Tensor:
        x = self.pe.add(x, pos)
        kw = self.pe.attn_kwargs(pos)
        for blk in self.blocks:
            x = blk(x, memory, key_padding_mask=key_padding_mask, memory_padding_mask=memory_padding_mask, **kw)
        return self.norm(x)
