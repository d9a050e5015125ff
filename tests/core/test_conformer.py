"""Conformer blocks: batch norm over valid frames against torch's BatchNorm1d, the macaron layer's shape
against torchaudio's ConformerLayer, and padding that changes nothing on valid frames."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from core.nn.blocks import EncoderLayer, TransformerEncoder
from core.nn.conformer import ConformerConv, MaskedBatchNorm1d
from core.nn.pe import sequence_coords


def _pair(c: int = 6) -> tuple[MaskedBatchNorm1d, nn.BatchNorm1d]:
    ours, ref = MaskedBatchNorm1d(c), nn.BatchNorm1d(c)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 1.5, c))
            m.bias.copy_(torch.linspace(-1, 1, c))
    return ours, ref


def test_masked_batch_norm_counts_only_valid_frames():
    """Statistics equal BatchNorm1d's over the valid frames alone (joined into one sequence)."""
    torch.manual_seed(1)
    ours, ref = _pair()
    lens = [11, 4, 7]
    x = torch.randn(3, 6, 11) * 3
    pad = torch.arange(11)[None] >= torch.tensor(lens)[:, None]
    x = x.masked_fill(pad[:, None], 0.0)  # zeros in the padding, as the conv module leaves them
    y = ours(x, pad)
    valid = torch.cat([x[i, :, :n] for i, n in enumerate(lens)], dim=1)[None]  # (1, C, sum(lens))
    want = ref(valid)[0]
    got = torch.cat([y[i, :, :n] for i, n in enumerate(lens)], dim=1)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-5)
    ours.eval(), ref.eval()  # evaluation normalises with the running statistics, padding or not
    assert torch.allclose(ours(x, pad), ref(x), atol=1e-5)


def test_masked_batch_norm_cumulative_average_and_untracked_statistics():
    """momentum=None is torch's cumulative average; without running statistics, evaluation uses the batch."""
    torch.manual_seed(4)
    pad = torch.arange(9)[None] >= torch.tensor([9, 5])[:, None]
    batches = [torch.randn(2, 3, 9).masked_fill(pad[:, None], 0.0) for _ in range(3)]
    ours, ref = MaskedBatchNorm1d(3, momentum=None), nn.BatchNorm1d(3, momentum=None)
    for x in batches:
        ours(x, pad)
        ref(torch.cat([x[0, :, :9], x[1, :, :5]], dim=1)[None])
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-5)
    free = MaskedBatchNorm1d(3, track_running_stats=False).eval()
    y = free(batches[0], pad)
    valid = torch.cat([y[0, :, :9], y[1, :, :5]], dim=1)
    assert torch.allclose(valid.mean(1), torch.zeros(3), atol=1e-5)


def test_macaron_layer_has_torchaudio_conformer_layer_parameters():
    from torchaudio.models.conformer import ConformerLayer

    dim, heads, ffn, kernel = 48, 4, 96, 15
    conv = functools.partial(ConformerConv, kernel_size=kernel, norm="batch")
    ours = EncoderLayer(dim, heads, conv=conv, mlp_ratio=ffn / dim, macaron=True)
    ref = ConformerLayer(input_dim=dim, ffn_dim=ffn, num_attention_heads=heads, depthwise_conv_kernel_size=kernel)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(ref)  # the closing norm is the layer's; the encoder adds one more at the end
    assert sum(isinstance(m, nn.LayerNorm) for m in ours.modules()) == sum(
        isinstance(m, nn.LayerNorm) for m in ref.modules())


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_conformer_encoder_ignores_padding_in_eval(norm):
    torch.manual_seed(2)
    conv = functools.partial(ConformerConv, kernel_size=5, norm=norm)
    enc = TransformerEncoder(dim=32, depth=2, num_heads=4, conv=conv, macaron=True).eval()
    x = torch.randn(1, 9, 32)
    padded = torch.cat([x, torch.randn(1, 5, 32)], dim=1)
    pad = torch.arange(14)[None] >= 9
    short = enc(x, sequence_coords(9))
    long = enc(padded, sequence_coords(14), key_padding_mask=pad)
    assert torch.allclose(short, long[:, :9], atol=1e-5)


def test_macaron_half_steps_are_half_of_the_feed_forward():
    """With attention and convolution zeroed, a macaron layer is norm_out(x + ff/2 + mlp/2) of its inputs."""
    torch.manual_seed(3)
    layer = EncoderLayer(16, 2, macaron=True).eval()
    with torch.no_grad():
        layer.attn.proj.weight.zero_(), layer.attn.proj.bias.zero_()
        layer.mlp.load_state_dict(layer.ff.state_dict())
        layer.norm2.load_state_dict(layer.norm_ff.state_dict())
    x = torch.randn(2, 5, 16)
    h = x + 0.5 * layer.ff(layer.norm_ff(x))
    want = layer.norm_out(h + 0.5 * layer.mlp(layer.norm2(h)))
    assert torch.allclose(layer(x), want, atol=1e-6)


def test_unknown_conv_norm_is_refused():
    with pytest.raises(ValueError, match="conv norm"):
        ConformerConv(8, norm="layer")
