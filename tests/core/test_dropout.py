"""core.nn.dropout.Dropout: the keep rate, the scaling and the gradient of inverted dropout."""

import pytest
import torch
from torch import nn

from core.nn.dropout import Dropout, keep_mask


def test_keep_mask_rate_and_lanes():
    torch.manual_seed(0)
    keep, rate = keep_mask((1000, 1000), 0.1)
    assert rate == pytest.approx(1 - round(0.1 * 65536) / 65536) and abs(rate - 0.9) < 2**-17
    sd = (rate * (1 - rate) / keep.numel()) ** 0.5
    assert abs(keep.float().mean().item() - rate) < 5 * sd
    # each of the four 16-bit lanes of a 64-bit draw is uniform on its own
    lanes = keep.flatten()[: 4 * (keep.numel() // 4)].view(-1, 4).float().mean(0)
    assert ((lanes - rate).abs() < 5 * sd * 2).all()
    # neighbours are independent: P(keep_i and keep_i+1) = rate^2
    flat = keep.flatten().float()
    assert abs((flat[:-1] * flat[1:]).mean().item() - rate**2) < 5 * sd * 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_scales_kept_values_and_gradient(dtype):
    torch.manual_seed(1)
    d = Dropout(0.25).train()
    x = (torch.rand(64, 33, 17) + 0.5).to(dtype).requires_grad_()  # no zeros: y != 0 marks the kept values
    y = d(x)
    kept = y != 0
    rate = 1 - round(0.25 * 65536) / 65536
    torch.testing.assert_close(y[kept], (x[kept] / rate).to(dtype))
    assert abs(kept.float().mean().item() - rate) < 0.01
    y.float().sum().backward()
    torch.testing.assert_close(x.grad, (kept.to(dtype) / rate).to(dtype))


def test_dropout_eval_identity_seeded_and_nn_compatible():
    d = Dropout(0.5)
    x = torch.randn(8, 8)
    assert d.eval()(x) is x and Dropout(0.0).train()(x) is x
    assert (Dropout(1.0).train()(x) == 0).all()
    d.train()
    torch.manual_seed(3)
    a = d(x)
    torch.manual_seed(3)
    assert torch.equal(a, d(x)) and isinstance(d, nn.Dropout)
    # the mean is preserved: E[dropout(x)] = x
    torch.manual_seed(4)
    ones = torch.ones(400_000)
    assert abs(d(ones).mean().item() - 1.0) < 0.01
