"""Other resolutions: the learned and sinusoidal PEs are resampled to the new patch grid."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from core.nn.pe import LearnedPE, RoPE, SinusoidalPE
from vision.models import ViT


def _vit(pe, img: int = 8, **kw) -> ViT:
    torch.manual_seed(0)
    return ViT(img_size=img, patch_size=2, in_chans=1, num_classes=10, dim=16, depth=1, num_heads=2,
               pe=partial(pe), **kw).eval()


def test_learned_table_is_bilinear_at_a_new_grid():
    """A table linear in (row, col) stays linear: bilinear resampling (align_corners) maps the new grid's
    corners onto the old corners, so entry (i, j) of a 7x7 grid equals the closed form at the scaled point."""
    model = _vit(LearnedPE)  # 4x4 grid
    a, b, c = torch.randn(16), torch.randn(16), torch.randn(16)
    r, q = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    with torch.no_grad():
        model.encoder.pe.table.copy_(r[..., None] * a + q[..., None] * b + c)
    pos = model.patch_coords(7, 7)
    emb = model.encoder.pe.embed(pos)[0]  # (49, 16)
    i, j = pos[0, :, 0], pos[0, :, 1]  # integer grid coordinates; the table is resampled
    want = (i * 3 / 6)[:, None] * a + (j * 3 / 6)[:, None] * b + c
    torch.testing.assert_close(emb, want, atol=1e-5, rtol=1e-5)


def test_sinusoidal_coordinates_are_scaled_to_the_trained_range():
    model = _vit(SinusoidalPE)  # trained 4x4 grid, 16 channels: 8 per axis, 4 frequencies
    pos = model.patch_coords(7, 7)
    assert pos[0, -1].tolist() == [3.0, 3.0] and pos[0, 1].tolist() == [0.0, 0.5]
    emb = model.encoder.pe.embed(pos)[0]
    # closed form, MAE layout: per axis [sin(p w_0..3), cos(p w_0..3)], w_k = 10000^(-k/4), column block first
    row, col = 3 * 2 / 6, 3 * 5 / 6  # patch (2, 5) of the 7x7 grid
    w = [10000 ** (-k / 4) for k in range(4)]
    want = ([math.sin(col * f) for f in w] + [math.cos(col * f) for f in w]
            + [math.sin(row * f) for f in w] + [math.cos(row * f) for f in w])
    torch.testing.assert_close(emb[2 * 7 + 5], torch.tensor(want), atol=1e-6, rtol=1e-6)


def test_extrapolate_keeps_integer_coordinates():
    model = _vit(SinusoidalPE, pe_resample="extrapolate")
    assert model.patch_coords(7, 7)[0, -1].tolist() == [6.0, 6.0]
    with pytest.raises(ValueError, match="pe_resample"):
        _vit(SinusoidalPE, pe_resample="bicubic")


@pytest.mark.parametrize("pe", [LearnedPE, SinusoidalPE, RoPE])
def test_model_trained_at_8_runs_at_16(pe):
    model = _vit(pe)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    model.eval()
    out = model(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # at the trained size the coordinates are the plain grid
    torch.testing.assert_close(model.patch_coords(4, 4), torch.tensor(
        [[[r, c] for r in range(4) for c in range(4)]], dtype=torch.float32))


def test_checkpoint_at_another_size_loads_with_resampled_table():
    small = _vit(LearnedPE, img=8)  # 4x4 table
    big = _vit(LearnedPE, img=14)  # 7x7 table
    big.load_state_dict(small.state_dict())
    want = small.encoder.pe.resampled((7, 7))
    torch.testing.assert_close(big.encoder.pe.table.detach(), want.detach())
    # the fine-tuned model at 14x14 equals the small model evaluated at 14x14
    x = torch.randn(2, 1, 14, 14)
    torch.testing.assert_close(big(x), small(x), atol=1e-5, rtol=1e-5)
