"""Semantic segmentation: a :class:`vision.model.ViT` encoder and a per-patch linear decoder.

Decoder (documented choice): a linear layer maps each encoded patch token to ``num_classes * p * p``
logits, which :func:`torch.nn.functional.pixel_shuffle` rearranges into the ``p x p`` pixels of
that patch, so every pixel gets its own logits at full resolution. It is the lightest decoder
that predicts at pixel resolution (SETR-naive/Segmenter-linear style); a prototype found it far
better than a convolutional upsampling head on digit canvases.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from core.attention import MultiHeadAttention
from vision.model import ViT

__all__ = ["PatchLinearDecoder", "SegViT"]


class PatchLinearDecoder(nn.Module):
    """Tokens ``(B, gh*gw, C)`` -> pixel logits ``(B, K, gh*p, gw*p)`` via linear + pixel shuffle."""

    def __init__(self, *, dim: int, num_classes: int, patch_size: int) -> None:
        super().__init__()
        self.num_classes, self.patch_size = num_classes, patch_size
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, num_classes * patch_size * patch_size)

    def forward(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        gh, gw = grid
        b = tokens.shape[0]
        x = self.proj(self.norm(tokens))  # (B, N, K*p*p)
        x = x.transpose(1, 2).reshape(b, -1, gh, gw)  # (B, K*p*p, gh, gw)
        return F.pixel_shuffle(x, self.patch_size)  # (B, K, gh*p, gw*p)


class SegViT(nn.Module):
    """ViT encoder (any ``attention=`` / ``pe=``) with a :class:`PatchLinearDecoder`.

    Args are those of :class:`vision.model.ViT`; ``num_classes`` counts the background class.
    ``pool`` only matters for a class token (``'cls'`` adds one that the decoder drops).
    """

    def __init__(self, *, img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 1,
                 num_classes: int = 11, dim: int = 192, depth: int = 6, num_heads: int = 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pool: str = "mean", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, pe_resample: str = "interpolate",
                 attn: Callable[..., nn.Module] = MultiHeadAttention, pe: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"model.num_classes={num_classes} must count the background and at least one class.")
        self.backbone = ViT(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0, dim=dim,
                            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, pool=pool,
                            drop=drop, attn_drop=attn_drop, drop_path=drop_path, pe_resample=pe_resample,
                            attn=attn, pe=pe)
        self.decoder = PatchLinearDecoder(dim=dim, num_classes=num_classes, patch_size=patch_size)
        self.num_classes = num_classes
        nn.init.trunc_normal_(self.decoder.proj.weight, std=0.02)
        nn.init.zeros_(self.decoder.proj.bias)

    @property
    def img_size(self) -> tuple[int, int]:
        return self.backbone.img_size

    @property
    def patch_embed(self) -> nn.Module:
        return self.backbone.patch_embed

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes, H, W)``."""
        p = self.backbone.patch_size
        feats = self.backbone.forward_features(x)[:, self.backbone.num_prefix:]  # (B, N, dim)
        return self.decoder(feats, (x.shape[-2] // p, x.shape[-1] // p))
