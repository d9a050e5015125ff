"""Pre-norm transformer encoder and decoder built from any attention variant and any PE.

Attention variants, PEs and the optional convolution module arrive as factories (Hydra ``_partial_``
objects or classes)::

    enc = TransformerEncoder(dim=192, depth=6, num_heads=3, attn=MultiHeadAttention,
                             pe=partial(RoPE), ndim=2, extent=(8, 8))
    y = enc(x, pos, key_padding_mask=None)        # x (B, N, C), pos (B|1, N, P)

Parameter names follow timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), so timm ViT weights map onto an encoder one to one. Everything a layer
owns (its convolution module too) lives under ``blocks.<i>``, so layer-wise decay and freezing, which
group parameters by block, treat a layer as one unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from core.nn.attention import AttentionBase, KVCache, MultiHeadAttention
from core.nn.capabilities import check_compatible
from core.nn.dropout import Dropout
from core.nn.pe import NoPE, PositionalEncoding, sequence_coords

AttnFactory = Callable[..., AttentionBase]
PEFactory = Callable[..., PositionalEncoding]
ConvFactory = Callable[[int], nn.Module]

__all__ = ["DecoderLayer", "EncoderLayer", "TransformerDecoder", "TransformerEncoder", "encoder_group_matcher",
           "mlp"]


def mlp(dim: int, mlp_ratio: float, drop: float) -> Mlp:
    """timm's ``Mlp`` (``fc1``, ``act``, ``fc2``) with :class:`core.nn.dropout.Dropout` layers."""
    m = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
    m.drop1, m.drop2 = Dropout(drop), Dropout(drop)
    return m


class EncoderLayer(nn.Module):
    """``x + drop_path(attn(norm1(x)))``, ``x + drop_path(mlp(norm2(x)))``, then the optional
    convolution module ``conv(x, key_padding_mask)`` (a residual module such as
    :class:`core.nn.conformer.ConformerConv`).

    ``macaron=True`` is the Conformer block (Gulati et al. 2020): half-step feed-forwards before and
    after, the convolution between attention and the second feed-forward, and a closing norm::

        x + ff(norm_ff(x)) / 2 -> x + attn(norm1(x)) -> conv(x) -> x + mlp(norm2(x)) / 2 -> norm_out(x)
    """

    def __init__(self, dim: int, num_heads: int, *, attn: AttnFactory = MultiHeadAttention,
                 conv: ConvFactory | None = None, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-6,
                 macaron: bool = False) -> None:
        super().__init__()
        self.macaron = macaron
        if macaron:
            self.norm_ff = nn.LayerNorm(dim, eps=norm_eps)
            self.ff = mlp(dim, mlp_ratio, drop)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp(dim, mlp_ratio, drop)
        self.conv = conv(dim) if conv is not None else None
        self.norm_out = nn.LayerNorm(dim, eps=norm_eps) if macaron else nn.Identity()

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None, causal: bool = False,
                **attn_kwargs) -> Tensor:
        ff_scale = 0.5 if self.macaron else 1.0
        if self.macaron:
            x = x + ff_scale * self.drop_path(self.ff(self.norm_ff(x)))
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask=key_padding_mask,
                                         causal=causal, **attn_kwargs))
        if self.macaron and self.conv is not None:
            x = self.conv(x, key_padding_mask)
        x = x + ff_scale * self.drop_path(self.mlp(self.norm2(x)))
        if not self.macaron and self.conv is not None:
            x = self.conv(x, key_padding_mask)
        return self.norm_out(x)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder memory, MLP; all pre-norm.

    With ``cache=(self_cache, cross_cache)`` (two :class:`core.nn.attention.KVCache`) the layer
    processes only the new positions: their keys/values join the self-attention cache, and the
    memory's keys/values are projected once.
    """

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
                memory_padding_mask: Tensor | None = None, cache: tuple[KVCache, KVCache] | None = None,
                **attn_kwargs) -> Tensor:
        self_cache, cross_cache = cache if cache is not None else (None, None)
        causal = x.shape[1] > 1  # a single new position sees every cached one
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask=key_padding_mask, causal=causal,
                                         cache=self_cache, **attn_kwargs))
        x = x + self.drop_path(self.cross_attn(self.norm_x(x), memory, key_padding_mask=memory_padding_mask,
                                               cache=cross_cache))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _drop_paths(drop_path: float, depth: int) -> list[float]:
    return [float(r) for r in torch.linspace(0, drop_path, depth)]  # stochastic depth decay rule


def _build_pe(pe: PEFactory | None, attn: AttnFactory, *, dim: int, num_heads: int, ndim: int,
              coord_scale: float, extent: tuple[int, ...] | None, causal: bool | None) -> PositionalEncoding:
    check_compatible(attn, pe, ndim=ndim, causal=causal)
    return (pe or NoPE)(dim=dim, num_heads=num_heads, ndim=ndim, coord_scale=coord_scale, extent=extent)


def encoder_group_matcher(prefix: str = "encoder", stem: tuple[str, ...] = ()) -> dict:
    """timm's ``group_matcher`` for a model holding a :class:`TransformerEncoder` at ``prefix``:
    ``stem`` (embeddings, class token) and the encoder's PE form group 0, block ``i`` the next groups,
    the final norm joins the last block; everything else (heads, decoders) comes last."""
    p = prefix.replace(".", r"\.")
    stem_re = "|".join([*(s.replace(".", r"\.") for s in stem), rf"{p}\.pe\."])
    return {"stem": rf"^(?:{stem_re})", "blocks": [(rf"^{p}\.blocks\.(\d+)\.", None), (rf"^{p}\.norm\.", (99999,))]}


class TransformerEncoder(nn.Module):
    """A stack of :class:`EncoderLayer` with a positional encoding and a final norm.

    Args:
        dim, depth, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_path: as in timm.
        attn: attention factory (``attention=`` in the config).
        pe: PE factory (``pe=`` in the config), or ``None`` for no PE.
        conv: optional convolution-module factory ``conv(dim)`` placed in every layer.
        ndim: dimensionality of the token coordinates (1 text/audio, 2 patches).
        coord_scale: multiplies coordinates before the PE (e.g. frames per second for audio).
        extent: largest length / grid the PE must cover (learned tables).
        macaron: Conformer blocks (see :class:`EncoderLayer`).
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, attn: AttnFactory = MultiHeadAttention,
                 pe: PEFactory | None = None, conv: ConvFactory | None = None, ndim: int = 1,
                 coord_scale: float = 1.0, extent: tuple[int, ...] | None = None, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 final_norm: bool = True, causal: bool = False, macaron: bool = False) -> None:
        super().__init__()
        self.pe = _build_pe(pe, attn, dim=dim, num_heads=num_heads, ndim=ndim, coord_scale=coord_scale,
                            extent=extent, causal=causal)
        self.blocks = nn.ModuleList(
            EncoderLayer(dim, num_heads, attn=attn, conv=conv, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                         attn_drop=attn_drop, drop_path=dp, macaron=macaron)
            for dp in _drop_paths(drop_path, depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6) if final_norm else nn.Identity()

    def no_weight_decay(self) -> set[str]:
        """Parameter names (relative to this module) that take no weight decay: a learned PE table."""
        return {n for n, _ in self.pe.named_parameters(prefix="pe")}

    def forward(self, x: Tensor, pos: Tensor, *, key_padding_mask: Tensor | None = None,
                causal: bool = False, num_prefix: int = 0) -> Tensor:
        """``x`` (B, num_prefix + N, C); ``pos`` (B|1, N, P) for the non-prefix tokens. Prefix
        tokens (a class token) get no additive embedding, no rotation and no bias."""
        for state in self._states(x, pos, key_padding_mask, causal, num_prefix):
            pass  # only the last is kept (the embedded input when there are no layers)
        return self.norm(state)

    def hidden_states(self, x: Tensor, pos: Tensor, *, key_padding_mask: Tensor | None = None,
                      causal: bool = False, num_prefix: int = 0) -> list[Tensor]:
        """The embedded input, then every layer's output, before the final norm: entry ``i`` is layer ``i``'s
        (Hugging Face's ``output_hidden_states`` order; arguments as :meth:`forward`)."""
        return list(self._states(x, pos, key_padding_mask, causal, num_prefix))

    def _states(self, x: Tensor, pos: Tensor, key_padding_mask: Tensor | None, causal: bool,
                num_prefix: int) -> Iterator[Tensor]:
        x = self.pe.add(x, pos, num_prefix)
        yield x
        kw = self.pe.attn_kwargs(pos, prefix=num_prefix)
        for blk in self.blocks:
            x = blk(x, key_padding_mask=key_padding_mask, causal=causal, **kw)
            yield x


class TransformerDecoder(nn.Module):
    """A stack of :class:`DecoderLayer`; the PE acts on 1-D target positions (self-attention only).

    ``forward`` runs whole target prefixes (teacher forcing); ``new_cache`` and ``step`` decode one
    position at a time, each step costing one layer pass per layer instead of a pass over the prefix.
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, attn: AttnFactory = MultiHeadAttention,
                 cross_attn: AttnFactory | None = None, pe: PEFactory | None = None, ndim: int = 1,
                 coord_scale: float = 1.0, extent: tuple[int, ...] | None = None, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.pe = _build_pe(pe, attn, dim=dim, num_heads=num_heads, ndim=ndim, coord_scale=coord_scale,
                            extent=extent, causal=True)
        self.blocks = nn.ModuleList(
            DecoderLayer(dim, num_heads, attn=attn, cross_attn=cross_attn, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop, drop_path=dp)
            for dp in _drop_paths(drop_path, depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.pe.named_parameters(prefix="pe")}

    def forward(self, x: Tensor, pos: Tensor, memory: Tensor, *, key_padding_mask: Tensor | None = None,
                memory_padding_mask: Tensor | None = None) -> Tensor:
        x = self.pe.add(x, pos)
        kw = self.pe.attn_kwargs(pos)
        for blk in self.blocks:
            x = blk(x, memory, key_padding_mask=key_padding_mask, memory_padding_mask=memory_padding_mask, **kw)
        return self.norm(x)

    def new_cache(self) -> list[tuple[KVCache, KVCache]]:
        """Empty self- and cross-attention caches, one pair per layer."""
        return [(KVCache(), KVCache()) for _ in self.blocks]

    def step(self, x: Tensor, memory: Tensor, cache: list[tuple[KVCache, KVCache]], *,
             memory_padding_mask: Tensor | None = None) -> Tensor:
        """Outputs ``(B, n, C)`` for the ``n`` new positions ``x`` that follow the cached ones."""
        start, n = cache[0][0].positions, x.shape[1]
        pos_q = sequence_coords(n, device=x.device, start=start)  # the new positions
        pos_k = sequence_coords(start + n, device=x.device)  # every position they may attend to
        x = self.pe.add(x, pos_q)
        kw = self.pe.attn_kwargs(pos_q, pos_k)
        for blk, c in zip(self.blocks, cache):
            x = blk(x, memory, memory_padding_mask=memory_padding_mask, cache=c, **kw)
        return self.norm(x)
