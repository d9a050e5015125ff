"""timm interop: a randomly initialised timm VisionTransformer saved to disk gives our ViT equal logits."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from references import mae_2d_sincos
from timm.models.vision_transformer import VisionTransformer

from core.nn.pe import ALiBi, LearnedPE, NoPE, RoPE, SinusoidalPE
from vision.models import ViT
from vision.timm_interop import from_timm_state_dict, load_timm_checkpoint, to_timm_state_dict

SIZE = dict(img_size=16, patch_size=4, in_chans=3, num_classes=7, depth=2, num_heads=3, mlp_ratio=4.0)


def _timm(pool: str = "cls", **kw) -> VisionTransformer:
    extra = {} if pool == "cls" else dict(global_pool="avg", class_token=False, fc_norm=False)
    torch.manual_seed(1)
    m = VisionTransformer(embed_dim=48, **SIZE, **extra, **kw).eval()
    with torch.no_grad():  # timm initialises these near zero: make them matter
        m.pos_embed.normal_(0, 0.5)
        if m.cls_token is not None:
            m.cls_token.normal_(0, 0.5)
    return m


def _ours(pe=LearnedPE, pool: str = "cls") -> ViT:
    torch.manual_seed(2)
    return ViT(dim=48, pool=pool, pe=partial(pe), **SIZE).eval()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_timm_file_loads_with_equal_logits(pool, tmp_path):
    timm_model = _timm(pool)
    path = tmp_path / "vit_random.pth"
    torch.save(timm_model.state_dict(), path)
    ours = _ours(LearnedPE, pool)
    x = torch.randn(4, 3, 16, 16)
    assert not torch.allclose(ours(x), timm_model(x), atol=1e-3)
    load_timm_checkpoint(ours, path)
    torch.testing.assert_close(ours(x), timm_model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pe,pool", [(LearnedPE, "cls"), (SinusoidalPE, "cls"), (NoPE, "mean"),
                                     (SinusoidalPE, "mean")])
def test_export_loads_into_timm_strictly(pe, pool, tmp_path):
    ours = _ours(pe, pool)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.2)
    path = tmp_path / "ours_as_timm.pth"
    torch.save(to_timm_state_dict(ours), path)
    timm_model = _timm(pool)
    timm_model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(timm_model(x), ours(x), atol=1e-5, rtol=1e-5)
    back = _ours(pe, pool)  # and back again
    back.load_state_dict(from_timm_state_dict(back, timm_model.state_dict()))
    torch.testing.assert_close(back(x), ours(x), atol=1e-5, rtol=1e-5)


def test_learned_table_is_timm_pos_embed_without_class_slot():
    timm_model = _timm("cls")
    ours = _ours(LearnedPE)
    state = from_timm_state_dict(ours, timm_model.state_dict())
    pos = timm_model.pos_embed[0].detach()
    torch.testing.assert_close(state["encoder.pe.table"], pos[1:].reshape(4, 4, 48))
    torch.testing.assert_close(state["cls_token"], timm_model.cls_token.detach() + pos[:1])


def test_refusals():
    timm_model = _timm("cls")
    with pytest.raises(ValueError, match="pe=learned"):
        from_timm_state_dict(_ours(SinusoidalPE), timm_model.state_dict())
    with pytest.raises(ValueError, match="pool"):
        from_timm_state_dict(_ours(LearnedPE, "mean"), timm_model.state_dict())
    for pe in (RoPE, ALiBi):
        with pytest.raises(ValueError, match="no timm"):
            to_timm_state_dict(_ours(pe))
    with pytest.raises(FileNotFoundError):
        load_timm_checkpoint(_ours(), "/nonexistent/vit.pth")


def test_mae_fixed_table_loads_into_sinusoidal_and_exports_back():
    """A timm ViT carrying MAE's fixed 2-D sin-cos table loads strictly into pe=sinusoidal, and export
    writes that same table."""
    timm_model = _timm("cls")
    gh = gw = SIZE["img_size"] // SIZE["patch_size"]
    table = np.concatenate([np.zeros((1, 48)), mae_2d_sincos(48, gh, gw)])  # MAE: zero class slot
    with torch.no_grad():
        timm_model.pos_embed.copy_(torch.tensor(table, dtype=torch.float32)[None])
    ours = _ours(SinusoidalPE, "cls")
    ours.load_state_dict(from_timm_state_dict(ours, timm_model.state_dict()))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(ours(x), timm_model(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(to_timm_state_dict(ours)["pos_embed"], timm_model.pos_embed.detach(), atol=1e-6, rtol=0)


def test_non_fixed_pos_embed_refused_by_name():
    ours = _ours(SinusoidalPE, "cls")
    with pytest.raises(ValueError, match="is not the fixed sinusoidal table"):
        from_timm_state_dict(ours, _timm("cls").state_dict())
