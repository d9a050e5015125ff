"""Positional encodings against closed-form values."""

import math

import pytest
import torch
from references import mae_2d_sincos

from core.nn.attention import MultiHeadAttention
from core.nn.pe import ALiBi, LearnedPE, NoPE, RoPE, SinusoidalPE, alibi_slopes, grid_coords, sequence_coords, sincos


def test_sinusoidal_1d_closed_form():
    d = 8
    emb = sincos(torch.tensor([[3.0]]), d)[0]
    # MAE layout: [sin(p w_0..w_3), cos(p w_0..w_3)], w_i = 10000^(-i/4)
    w = [10000 ** (-i / 4) for i in range(4)]
    ref = [math.sin(3 * wi) for wi in w] + [math.cos(3 * wi) for wi in w]
    torch.testing.assert_close(emb, torch.tensor(ref), atol=1e-6, rtol=0)


@pytest.mark.parametrize("gh,gw", [(4, 4), (3, 5)])
def test_sinusoidal_2d_is_maes_table(gh, gw):
    """Row-major patch order, first half the column, second half the row: MAE's fixed table exactly."""
    emb = SinusoidalPE(32, 2, 2).embed(grid_coords(gh, gw))[0]
    torch.testing.assert_close(emb, torch.tensor(mae_2d_sincos(32, gh, gw), dtype=torch.float32), atol=1e-6, rtol=0)


def test_sinusoidal_2d_rows_first_is_an_option():
    pos = grid_coords(3, 4)
    mae, rows = SinusoidalPE(16, 2, 2).embed(pos)[0], SinusoidalPE(16, 2, 2, axis_order="rows_first").embed(pos)[0]
    torch.testing.assert_close(rows, torch.cat([mae[:, 8:], mae[:, :8]], dim=-1))
    r, c = 2, 1
    torch.testing.assert_close(rows[r * 4 + c, :8], sincos(torch.tensor([[float(r)]]), 8)[0])
    with pytest.raises(ValueError, match="axis_order"):
        SinusoidalPE(16, 2, 2, axis_order="diagonal")


def test_time_frame_pe_uses_seconds_times_scale():
    pe = SinusoidalPE(16, 2, 1, coord_scale=100.0)
    t = torch.tensor([[[0.0], [0.04], [0.08]]])  # frame times in seconds
    torch.testing.assert_close(pe.embed(t), sincos(torch.tensor([[[0.0], [4.0], [8.0]]]), 16))


def test_additive_pe_skips_prefix_tokens():
    pe = SinusoidalPE(8, 2, 1)
    x = torch.zeros(1, 4, 8)
    y = pe.add(x, sequence_coords(3), prefix=1)
    assert torch.all(y[:, 0] == 0)
    torch.testing.assert_close(y[:, 1:], pe.embed(sequence_coords(3)))


@pytest.mark.parametrize("ndim", [1, 2])
def test_rope_scores_depend_only_on_offset(ndim):
    torch.manual_seed(0)
    rope = RoPE(32, 2, ndim)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq, pk):
        rq, rk = rope.rotation(torch.tensor([[pq]])), rope.rotation(torch.tensor([[pk]]))
        return (rq.apply(q) * rk.apply(k)).sum()

    a, b = [2.0] * ndim, [5.0] * ndim
    shift = [7.0, -3.0][:ndim]
    s0 = score(a, b)
    s1 = score([x + s for x, s in zip(a, shift)], [x + s for x, s in zip(b, shift)])
    torch.testing.assert_close(s0, s1, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(s0, score(a, [9.0] * ndim))


def test_rope_1d_closed_form_rotation():
    rope = RoPE(4, 1, 1)  # head dim 4: pairs (0, 2), (1, 3); theta = 1, 10000^-0.5
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    p = 2.0
    y = rope.rotation(torch.tensor([[[p]]])).apply(x).flatten()
    th = [1.0, 10000 ** -0.5]
    ref = [1 * math.cos(p * th[0]) - 3 * math.sin(p * th[0]), 2 * math.cos(p * th[1]) - 4 * math.sin(p * th[1]),
           3 * math.cos(p * th[0]) + 1 * math.sin(p * th[0]), 4 * math.cos(p * th[1]) + 2 * math.sin(p * th[1])]
    torch.testing.assert_close(y, torch.tensor(ref), atol=1e-5, rtol=1e-5)


def test_alibi_slopes_and_bias():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([2.0 ** -(2 * (i + 1)) for i in range(4)]))
    assert len(alibi_slopes(6)) == 6 and torch.all(alibi_slopes(6) > 0)
    b = ALiBi(16, 4, 1).bias(sequence_coords(5), sequence_coords(5))
    assert b.shape == (1, 4, 5, 5)
    torch.testing.assert_close(b[0, 0, 1, 4], torch.tensor(-0.25 * 3))
    b2 = ALiBi(16, 4, 2, direction=0.0, slope_scale=1.0).bias(grid_coords(2, 2), grid_coords(2, 2))
    torch.testing.assert_close(b2[0, 1, 0, 3], torch.tensor(-(2.0 ** -4) * math.sqrt(2)))


def test_directional_alibi_closed_form_and_translation_invariance():
    pe = ALiBi(16, 4, 2)  # 2-D defaults: direction 1, slopes x4; head h looks along angle 2*pi*h/4
    b = pe.bias(grid_coords(3, 3), grid_coords(3, 3))[0]
    slope0, slope1 = 4 * 2.0 ** -2, 4 * 2.0 ** -4
    q, k = 4, 5  # centre (1, 1) -> key (1, 2): d = (0, 1)
    torch.testing.assert_close(b[0, q, k], torch.tensor(-slope0 * (1.0 - 0.0)))  # u_0 = (1, 0): d.u = 0
    torch.testing.assert_close(b[1, q, k], torch.tensor(-slope1 * (1.0 - 1.0)))  # u_1 = (0, 1): free along u
    torch.testing.assert_close(b[1, k, q], torch.tensor(-slope1 * (1.0 + 1.0)))  # twice the cost backwards
    assert torch.all(b <= 1e-6)
    shifted = pe.bias(grid_coords(3, 3) + 5.0, grid_coords(3, 3) + 5.0)[0]
    torch.testing.assert_close(shifted, b)
    assert ALiBi(16, 4, 1).direction == 0.0  # 1-D keeps the paper's symmetric form


def test_alibi_prefix_rows_are_zero():
    kw = ALiBi(16, 4, 1).attn_kwargs(sequence_coords(3), prefix=1)
    assert kw["bias"].shape == (1, 4, 4, 4)
    assert torch.all(kw["bias"][:, :, 0] == 0) and torch.all(kw["bias"][:, :, :, 0] == 0)


def test_learned_pe_interpolation_keeps_grid_points():
    torch.manual_seed(0)
    pe = LearnedPE(8, 2, 2, extent=(4, 4))
    big = pe.resampled((7, 7))  # align_corners: old point i lands on new point 2i
    torch.testing.assert_close(big[::2, ::2], pe.table.detach(), atol=1e-6, rtol=0)
    emb = pe.embed(grid_coords(7, 7))[0].view(7, 7, 8)
    torch.testing.assert_close(emb[::2, ::2], pe.table.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(big[1, 0], (pe.table[0, 0] + pe.table[1, 0]).detach() / 2)
    # same grid: table used as is
    torch.testing.assert_close(pe.embed(grid_coords(4, 4))[0].view(4, 4, 8), pe.table.detach())


def test_learned_1d_grows_past_its_table_with_a_warning():
    pe = LearnedPE(8, 2, 1, extent=(5,))
    torch.testing.assert_close(pe.embed(sequence_coords(3))[0], pe.table[:3].detach())
    with pytest.warns(UserWarning, match="exceeds"):
        assert pe.embed(sequence_coords(9)).shape == (1, 9, 8)


def test_ndim_restrictions_and_shape_errors():
    with pytest.raises(ValueError, match="2-D positions"):
        SinusoidalPE(8, 2, 1, only_ndim=2)
    with pytest.raises(ValueError, match="2-D positions"):
        RoPE(16, 2, 1, only_ndim=2)
    with pytest.raises(ValueError, match="divisible"):
        RoPE(12, 2, 2)  # head dim 6 not divisible by 4
    with pytest.raises(ValueError, match="extent"):
        LearnedPE(8, 2, 1)


def test_none_is_identity():
    x = torch.randn(2, 3, 8)
    pe = NoPE(8, 2, 1)
    assert pe.add(x, sequence_coords(3)) is x and pe.attn_kwargs(sequence_coords(3)) == {}


def test_rope_with_sdpa_matches_rotating_by_hand():
    torch.manual_seed(1)
    m = MultiHeadAttention(16, 2).eval()
    rope = RoPE(16, 2, 1)
    x = torch.randn(1, 4, 16)
    out = m(x, **rope.attn_kwargs(sequence_coords(4)))
    q, k, v = (m._heads(t) for t in m.qkv(x).chunk(3, dim=-1))
    r = rope.rotation(sequence_coords(4))
    w = (r.apply(q) @ r.apply(k).transpose(-2, -1) / math.sqrt(8)).softmax(-1)
    ref = m.proj((w @ v).transpose(1, 2).reshape(1, 4, 16))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
