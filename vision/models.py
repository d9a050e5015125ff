"""Vision models built from ``core``: the ViT classifier and the segmentation ViT.

ViT: patch embedding, encoder with any attention/PE, head.

Parameter names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``blocks.*`` inside ``encoder``, ``norm``, ``head``) so weights convert one to one
(:mod:`vision.timm_interop`).

Other resolutions: a ViT accepts any image whose sides divide by ``patch_size``. With
``pe_resample='interpolate'`` (default) the PE is resampled to the new patch grid so that the
image spans the same PE range as in training: a learned table is resampled bilinearly
(``align_corners=True``, by :class:`core.nn.pe.LearnedPE`), and every other PE sees its coordinates
scaled, ``row * (H_train - 1) / (H - 1)`` (for the sinusoidal PE this evaluates the continuous
embedding at the resampled points, i.e. exact interpolation). ``'extrapolate'`` keeps integer
coordinates. Loading a state dict whose learned table has another grid resamples it the same way,
so fine-tuning at a new ``img_size`` starts from a checkpoint trained at the old one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.attention import MultiHeadAttention, record_attention
from core.nn.blocks import TransformerEncoder, encoder_group_matcher
from core.nn.pe import LearnedPE, grid_coords, resample_table
from vision.graphs import image_graph

__all__ = ["PatchEmbed", "PatchLinearDecoder", "SegViT", "ViT"]


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
    """ViT classifier on 2-D patch positions. ``pool='cls'`` uses a class token (no PE on it),
    ``'mean'`` averages patches.

    Args:
        img_size: training image size (fixes the learned PE grid; other sizes are resampled).
        patch_size, in_chans, num_classes, dim, depth, num_heads, mlp_ratio, drop_path: as timm.
        attn: attention factory (``attention=``); pe: PE factory (``pe=``).
    """

    pos_ndim = 2

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
        self.encoder = TransformerEncoder(dim=dim, depth=depth, num_heads=num_heads, attn=attn, pe=pe,
                                          ndim=self.pos_ndim,
                                          extent=self.grid, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                                          attn_drop=attn_drop, drop_path=drop_path)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", *(f"encoder.{n}" for n in self.encoder.no_weight_decay())}

    def group_matcher(self, coarse: bool = False) -> dict:
        return encoder_group_matcher("encoder", stem=("cls_token", "patch_embed."))

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

    @torch.no_grad()
    def attention_example(self, inputs: tuple[Tensor, ...], label: int, datamodule) -> dict:
        """The last layer's map for one image, and the class query's (or the mean patch query's) attention
        over the patch grid (see :mod:`core.report.gallery`)."""
        x = inputs[0][:1]
        self.eval()
        with record_attention(self.encoder.blocks[-1]) as mods:
            pred = int(self(x).argmax(-1))
        attn = next(iter(mods.values())).last_attn[0].float().mean(0)  # (N', N')
        p = self.num_prefix
        query = attn[0, p:] if p else attn.mean(0)
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        return {"kind": "patches", "attn": attn.numpy(), "image": x[0].mean(0).numpy(),
                "query_map": query.reshape(gh, gw).numpy(), "title": f"label {label}, predicted {pred}"}

    def export_graphs(self) -> list:
        return [image_graph(self, in_chans=self.patch_embed.proj.in_channels, img_size=self.img_size,
                            output="logits", note="image (B, C, H, W) -> class logits (B, K)")]

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

    pos_ndim = ViT.pos_ndim

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

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}

    def group_matcher(self, coarse: bool = False) -> dict:
        return encoder_group_matcher("backbone.encoder", stem=("backbone.cls_token", "backbone.patch_embed."))

    @property
    def img_size(self) -> tuple[int, int]:
        return self.backbone.img_size

    @property
    def patch_embed(self) -> nn.Module:
        return self.backbone.patch_embed

    def export_graphs(self) -> list:
        return [image_graph(self, in_chans=self.patch_embed.proj.in_channels, img_size=self.img_size,
                            output="logits", note="image (B, C, H, W) -> per-pixel class logits (B, K, H, W)")]

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes, H, W)``."""
        p = self.backbone.patch_size
        feats = self.backbone.forward_features(x)[:, self.backbone.num_prefix:]  # (B, N, dim)
        return self.decoder(feats, (x.shape[-2] // p, x.shape[-1] // p))
