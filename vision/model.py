"""Vision Transformer built from ``core``: patch embedding, encoder with any attention/PE, head.

Parameter names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``blocks.*`` inside ``encoder``, ``norm``, ``head``) so weights convert one to one
(:mod:`vision.timm_interop`).

Other resolutions: a ViT accepts any image whose sides divide by ``patch_size``. With
``pe_resample='interpolate'`` (default) the PE is resampled to the new patch grid so that the
image spans the same PE range as in training: a learned table is resampled bilinearly
(``align_corners=True``, by :class:`core.pe.LearnedPE`), and every other PE sees its coordinates
scaled, ``row * (H_train - 1) / (H - 1)`` (for the sinusoidal PE this evaluates the continuous
embedding at the resampled points, i.e. exact interpolation). ``'extrapolate'`` keeps integer
coordinates. Loading a state dict whose learned table has another grid resamples it the same way,
so fine-tuning at a new ``img_size`` starts from a checkpoint trained at the old one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from core.attention import MultiHeadAttention
from core.blocks import TransformerEncoder
from core.pe import LearnedPE, grid_coords, resample_table

__all__ = ["PatchEmbed", "ViT"]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches projected to ``dim`` channels: (B, C, H, W) -> (B, N, dim)."""

    def __init__(self, *, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by model.patch_size={p}.")
        x = self.proj(x)  # (B, dim, H/p, W/p)
        return x.flatten(2).transpose(1, 2), (h // p, w // p)


class ViT(nn.Module):
    """ViT classifier. ``pool='cls'`` uses a class token (no PE on it), ``'mean'`` averages patches.

    Args:
        img_size: training image size (fixes the learned PE grid; other sizes are resampled).
        patch_size, in_chans, num_classes, dim, depth, num_heads, mlp_ratio, drop_path: as timm.
        attn: attention factory (``attention=``); pe: PE factory (``pe=``).
    """

    def __init__(self, *, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, dim: int = 192, depth: int = 12, num_heads: int = 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pool: str = "cls", drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, pe_resample: str = "interpolate",
                 attn: Callable[..., nn.Module] = MultiHeadAttention, pe: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        h, w = _pair(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"model.img_size={img_size} is not divisible by model.patch_size={patch_size}.")
        if dim % num_heads:
            raise ValueError(f"model.dim={dim} is not divisible by model.num_heads={num_heads}.")
        if pool not in ("cls", "mean"):
            raise ValueError(f"model.pool must be 'cls' or 'mean', not '{pool}'.")
        if pe_resample not in ("interpolate", "extrapolate"):
            raise ValueError(f"model.pe_resample must be 'interpolate' or 'extrapolate', not '{pe_resample}'.")
        self.pe_resample = pe_resample
        self.img_size, self.patch_size, self.pool, self.num_classes = (h, w), patch_size, pool, num_classes
        self.grid = (h // patch_size, w // patch_size)
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, dim=dim)
        self.num_prefix = 1 if pool == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.encoder = TransformerEncoder(dim=dim, depth=depth, num_heads=num_heads, attn=attn, pe=pe, ndim=2,
                                          extent=self.grid, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                                          attn_drop=attn_drop, drop_path=drop_path)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def patch_coords(self, gh: int, gw: int, device: torch.device | None = None) -> Tensor:
        """PE coordinates ``(1, N, 2)`` of a ``gh x gw`` patch grid (row, column), see module docstring."""
        pos = grid_coords(gh, gw, device=device)
        if (gh, gw) == self.grid or self.pe_resample == "extrapolate" or isinstance(self.encoder.pe, LearnedPE):
            return pos
        scale = [(t - 1) / max(1, n - 1) for t, n in zip(self.grid, (gh, gw))]
        return pos * torch.tensor(scale, device=device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        key = prefix + "encoder.pe.table"
        pe = self.encoder.pe
        if isinstance(pe, LearnedPE) and key in state_dict and state_dict[key].shape != pe.table.shape:
            state_dict[key] = resample_table(state_dict[key], tuple(pe.table.shape[:-1]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward_features(self, x: Tensor) -> Tensor:
        """Encoded tokens ``(B, num_prefix + N, dim)``."""
        tokens, (gh, gw) = self.patch_embed(x)
        pos = self.patch_coords(gh, gw, device=x.device)  # (1, N, 2): (row, column)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.encoder(tokens, pos, num_prefix=self.num_prefix)

    def forward_head(self, feats: Tensor) -> Tensor:
        pooled = feats[:, 0] if self.pool == "cls" else feats.mean(dim=1)
        return self.head(pooled)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
