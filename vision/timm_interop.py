"""Convert weights between timm's ``VisionTransformer`` and our :class:`vision.models.ViT`.

The block parameters already share timm's names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``); only their prefix differs (``blocks.*`` in timm, ``encoder.blocks.*`` here),
as does the final norm (``norm`` vs ``encoder.norm``). Position embeddings differ in kind:

* timm's ``pos_embed`` is ``(1, num_prefix + N, C)`` with a slot for the class token. Our class token
  gets no PE, so the class slot is folded into ``cls_token`` (``cls_token + pos_embed[:, 0]``): the
  first token entering the encoder is the same vector.
* with ``pe=learned`` the patch part becomes ``encoder.pe.table`` ``(gh, gw, C)`` (row-major, as timm).
* with another PE the patch part is not a parameter here: :func:`from_timm_state_dict` accepts it only
  when it equals our fixed embedding (MAE's 2-D sin-cos table for ``pe=sinusoidal``, zeros for none),
  else refuses unless ``strict=False``. Exporting such a model writes that fixed embedding into timm's
  ``pos_embed``, so a timm model (or an MAE-initialised one) reproduces our logits.
* rotary and bias PEs (RoPE, ALiBi) have no timm ``VisionTransformer`` counterpart; export refuses.

Pooling: ``pool='cls'`` matches timm's ``global_pool='token'``; ``pool='mean'`` matches
``global_pool='avg', class_token=False, fc_norm=False`` (final norm, then average).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from core.nn.pe import grid_coords

__all__ = ["from_timm_state_dict", "load_timm_checkpoint", "to_timm_state_dict"]

_RENAMES = (("blocks.", "encoder.blocks."), ("norm.", "encoder.norm."))


def _pe_kind(model) -> str:
    pe = model.encoder.pe
    return "learned" if hasattr(pe, "table") else pe.kind


def _fixed_embedding(model) -> Tensor:
    """Our non-learned patch embedding ``(N, C)`` (zeros for rotary/bias/no PE)."""
    gh, gw = model.grid
    pe = model.encoder.pe
    if pe.kind == "additive":
        return pe.embed(grid_coords(gh, gw))[0].detach()
    return torch.zeros(gh * gw, model.patch_embed.proj.out_channels)


def from_timm_state_dict(model, state: dict[str, Tensor], *, strict: bool = True) -> dict[str, Tensor]:
    """Our ViT state dict from a timm ``VisionTransformer`` state dict (``model`` gives shapes/PE).

    Raises:
        ValueError: one sentence when the timm model's layout does not fit ``model``.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    unknown = [k for k in state if not k.startswith(("blocks.", "norm.", "head.", "patch_embed.proj.",
                                                      "cls_token", "pos_embed"))]
    if unknown:
        raise ValueError(f"timm state dict has parameters our ViT does not have: {', '.join(unknown[:4])}.")
    has_cls = "cls_token" in state
    if has_cls != (model.pool == "cls"):
        raise ValueError(f"timm model {'has' if has_cls else 'has no'} class token but model.pool={model.pool}; "
                         "use pool=cls for global_pool='token', pool=mean for global_pool='avg'.")
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith(("cls_token", "pos_embed")):
            continue
        for old, new in _RENAMES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    gh, gw = model.grid
    if "pos_embed" in state:
        pos = state["pos_embed"][0]  # (num_prefix + N, C)
        prefix = pos.shape[0] - gh * gw
        if prefix not in (0, 1):
            raise ValueError(f"timm pos_embed has {pos.shape[0]} positions, our {gh}x{gw} grid needs {gh * gw} "
                             f"(+1 class slot); set model.img_size/patch_size to the timm model's.")
        if prefix and has_cls:
            out["cls_token"] = state["cls_token"] + pos[:1][None]
        patch = pos[prefix:]
        kind = _pe_kind(model)
        if kind == "learned":
            out["encoder.pe.table"] = patch.reshape(gh, gw, -1).clone()
        elif strict and not torch.allclose(patch, _fixed_embedding(model), atol=1e-5):
            name = "fixed sinusoidal table (MAE's)" if kind == "additive" else "all-zero table of this PE"
            raise ValueError(f"timm's pos_embed is not the {name} that pe={type(model.encoder.pe).__name__} "
                             "uses, so it cannot load; use pe=learned to keep it (or strict=False to drop it).")
    if has_cls and "cls_token" not in out:
        out["cls_token"] = state["cls_token"]
    own = model.state_dict()
    missing = [k for k in own if k not in out]
    if strict and missing:
        raise ValueError(f"timm state dict lacks {', '.join(missing[:4])}.")
    return out


def to_timm_state_dict(model) -> dict[str, Tensor]:
    """A state dict that timm's ``VisionTransformer`` of the same size loads with ``strict=True``.

    Use ``VisionTransformer(img_size=, patch_size=, in_chans=, num_classes=, embed_dim=, depth=, num_heads=,
    mlp_ratio=, global_pool='token')`` for ``pool='cls'`` or ``global_pool='avg', class_token=False,
    fc_norm=False`` for ``pool='mean'``.
    """
    kind = _pe_kind(model)
    if kind in ("rotary", "bias"):
        raise ValueError(f"pe={type(model.encoder.pe).__name__} has no timm VisionTransformer counterpart.")
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for k, v in own.items():
        if k in ("cls_token", "encoder.pe.table"):
            continue
        for new, old in _RENAMES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v.detach().clone()
    gh, gw = model.grid
    dim = model.patch_embed.proj.out_channels
    patch = own["encoder.pe.table"].reshape(gh * gw, dim) if kind == "learned" else _fixed_embedding(model)
    if model.cls_token is not None:
        out["cls_token"] = own["cls_token"].detach().clone()
        patch = torch.cat([torch.zeros(1, dim), patch])  # the class token's PE lives in cls_token
    out["pos_embed"] = patch[None].clone()
    return out


def load_timm_checkpoint(model, path: str | Path, *, strict: bool = True) -> None:
    """Load a timm state dict saved with ``torch.save`` (or a ``.safetensors`` file) into ``model``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"timm checkpoint {p} does not exist.")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        state = torch.load(p, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state))
    model.load_state_dict(from_timm_state_dict(model, state, strict=strict), strict=strict)


def timm_vit(*, img_size: int, patch_size: int, in_chans: int, num_classes: int, dim: int, depth: int,
             num_heads: int, mlp_ratio: float = 4.0, pool: str = "cls", drop_path: float = 0.0, qkv_bias: bool = True,
             **ignored):
    """timm's own ``VisionTransformer`` built from our ViT's arguments (``model=timm_vit``): the peer baseline
    of ``bench/time_to_quality.py``. It has timm's learned ``pos_embed`` and attention, so ``attention=`` and
    ``pe=`` (passed in ``ignored``) do not apply."""
    from timm.models.vision_transformer import VisionTransformer

    extra = {} if pool == "cls" else dict(global_pool="avg", class_token=False, fc_norm=False)
    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                             drop_path_rate=drop_path, **extra)
