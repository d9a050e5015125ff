"""RoPE's extrapolation scalings and RoPE-Mixed against closed-form values."""

import math

import pytest
import torch

from core.nn.blocks import TransformerEncoder
from core.nn.pe import RoPE, RoPEMixed, grid_coords, sequence_coords


def _angles(rope: RoPE, n: int) -> torch.Tensor:
    """``(cos, sin)`` of the rotation angles of positions ``0..n-1``, ``(2, N, Dh)``."""
    r = rope.rotation(sequence_coords(n))
    return torch.stack([r.cos[0, 0], r.sin[0, 0]])


def _unit(angle: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(angle), torch.sin(angle)])


def _trained(scaling: str, length: int = 10, base: float = 10000.0) -> RoPE:
    rope = RoPE(4, 1, 1, base=base, scaling=scaling)  # head dim 4: pairs (0, 2), (1, 3)
    rope.rotation(sequence_coords(length))  # training mode: records the extent
    return rope.eval()


def test_extent_is_recorded_in_training_only():
    rope = RoPE(8, 2, 1)
    assert rope.trained_extent.tolist() == [0.0]
    rope.rotation(sequence_coords(10))
    rope.rotation(sequence_coords(6))
    assert rope.trained_extent.tolist() == [10.0]
    rope.eval().rotation(sequence_coords(40))
    assert rope.trained_extent.tolist() == [10.0]
    assert torch.equal(RoPE(8, 2, 1).state_dict()["trained_extent"], torch.zeros(1))


@pytest.mark.parametrize("scaling", ["none", "linear", "ntk"])
def test_inside_the_trained_extent_every_scaling_is_plain_rope(scaling):
    plain = _trained("none")
    torch.testing.assert_close(_angles(_trained(scaling), 10), _angles(plain, 10))


def test_linear_scaling_is_position_interpolation():
    # trained on 10 positions, evaluated on 40: position p is rotated as position p * 10 / 40 was
    p = torch.arange(40.0)
    ang = _angles(_trained("linear"), 40)
    theta = torch.tensor([1.0, 10000 ** -0.5])
    expected = _unit((p[:, None] / 4) * theta)  # positions 0 .. 9.75: inside the trained range
    torch.testing.assert_close(ang[..., :2], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ang[..., 2:], expected, atol=1e-5, rtol=1e-5)


def test_ntk_scaling_keeps_the_highest_frequency_and_interpolates_the_lowest():
    # d = 4 rotary channels: base' = base * s ** (4 / 2); theta_0 = 1 kept, theta_1 = base' ** -0.5 = base ** -0.5 / s
    s, base = 4.0, 10000.0
    ang = _angles(_trained("ntk", base=base), 40)
    p = torch.arange(40.0)
    torch.testing.assert_close(ang[..., 0], _unit(p), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ang[..., 1], _unit(p * (base * s**2) ** -0.5), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ang[..., 1], _unit(p * base ** -0.5 / s), atol=1e-6, rtol=1e-5)


def test_scaling_is_per_axis_on_grids():
    rope = RoPE(8, 1, 2, base=100.0, scaling="linear")  # 4 channels per axis
    rope.rotation(grid_coords(4, 4))
    rope.eval()
    r = rope.rotation(grid_coords(8, 4))  # rows twice the trained extent, columns inside it
    ang = torch.stack([r.cos[0, 0], r.sin[0, 0]])  # (2, N, 8): rows block [0:4], columns block [4:8]
    pos = grid_coords(8, 4)[0]
    torch.testing.assert_close(ang[..., 0], _unit(pos[:, 0] / 2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ang[..., 4], _unit(pos[:, 1]), atol=1e-5, rtol=1e-5)


def test_checkpoints_without_an_extent_load_and_never_scale():
    rope = RoPE(4, 1, 1, scaling="linear")
    state = {k: v for k, v in rope.state_dict().items() if k != "trained_extent"}
    rope.load_state_dict(state)
    torch.testing.assert_close(_angles(rope.eval(), 40), _angles(RoPE(4, 1, 1).eval(), 40))


def test_unknown_scaling_is_one_sentence():
    with pytest.raises(ValueError, match="choose one of none, linear, ntk"):
        RoPE(8, 2, 1, scaling="yarn")


def test_mixed_angles_are_positions_dot_learned_frequencies():
    torch.manual_seed(0)
    pe = RoPEMixed(16, 2, 2)  # head dim 8: 4 pairs per head
    pos = torch.tensor([[[2.0, 3.0], [-1.0, 5.0]]])
    r = pe.rotation(pos)
    expected = torch.einsum("np,hjp->hnj", pos[0], pe.freqs.detach())  # (H, N, 4)
    torch.testing.assert_close(r.cos[0], torch.cos(torch.cat([expected, expected], -1)), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(r.sin[0], torch.sin(torch.cat([expected, expected], -1)), atol=1e-6, rtol=1e-5)
    # initial magnitudes are the axial ones, the two halves of a head's pairs perpendicular
    mag = pe.freqs.detach().norm(dim=-1)
    torch.testing.assert_close(mag[0], torch.tensor([1.0, 10 ** -0.5, 1.0, 10 ** -0.5]))
    dot = (pe.freqs[:, :2] * pe.freqs[:, 2:]).sum(-1).detach()
    torch.testing.assert_close(dot, torch.zeros_like(dot), atol=1e-6, rtol=0)


def test_mixed_scores_depend_only_on_the_2d_offset():
    torch.manual_seed(1)
    pe = RoPEMixed(16, 2, 2)
    q, k = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8)

    def score(pq, pk):
        rq, rk = pe.rotation(torch.tensor([[pq]])), pe.rotation(torch.tensor([[pk]]))
        return (rq.apply(q) * rk.apply(k)).sum(-1)

    s0 = score([1.0, 2.0], [4.0, -1.0])
    torch.testing.assert_close(score([8.0, -3.0], [11.0, -6.0]), s0, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score([1.0, 2.0], [4.0, 2.0]), s0)


def test_mixed_with_zero_angles_is_axial_rope_with_pairs_reordered():
    dh, base = 8, 10.0
    mixed = RoPEMixed(dh, 1, 2, base=base)
    with torch.no_grad():  # phi = 0: pairs 0-1 along rows, pairs 2-3 along columns
        m = mixed.freqs.norm(dim=-1)
        mixed.freqs.copy_(torch.stack([torch.cat([m[:, :2], torch.zeros(1, 2)], 1),
                                       torch.cat([torch.zeros(1, 2), m[:, 2:]], 1)], dim=-1))
    axial = RoPE(dh, 1, 2, base=base)
    # mixed channel c -> axial channel: rows pairs (0,4),(1,5) -> (0,2),(1,3); columns (2,6),(3,7) -> (4,6),(5,7)
    perm = torch.tensor([0, 1, 4, 5, 2, 3, 6, 7])
    x = torch.randn(1, 1, 6, dh)
    pos = grid_coords(2, 3)
    ours = mixed.rotation(pos).apply(x)
    x_axial = torch.empty_like(x)
    x_axial[..., perm] = x
    ref = axial.rotation(pos).apply(x_axial)[..., perm]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_mixed_frequencies_learn_take_no_decay_and_serve_grids_only():
    enc = TransformerEncoder(dim=16, depth=1, num_heads=2, pe=RoPEMixed, ndim=2)
    out = enc(torch.randn(2, 6, 16), grid_coords(2, 3))
    out.sum().backward()
    assert enc.pe.freqs.grad is not None and enc.pe.freqs.grad.abs().sum() > 0
    assert "pe.freqs" in enc.no_weight_decay()
    with pytest.raises(ValueError, match="2-D"):
        RoPEMixed(16, 2, 1)
    assert not math.isnan(float(out.sum()))
