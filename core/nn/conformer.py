"""Conformer convolution module (Gulati et al. 2020), the optional convolution slot of an encoder layer,
and the batch norm over valid frames it uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.dropout import Dropout

__all__ = ["CONV_NORMS", "ConformerConv", "MaskedBatchNorm1d"]

#: normalisations after the depthwise conv: the paper's batch norm, or one group norm per utterance
CONV_NORMS = ("batch", "group")


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` on ``(B, C, N)`` whose training statistics count only valid frames.

    Bucketed speech batches are mostly padding for their short utterances; letting those zeros into
    the mean and variance (as ``nn.BatchNorm1d`` would) makes the statistics depend on which lengths
    share a batch, and the running averages used at test time drift from what training normalised with.
    """

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        uses_batch = self.training or self.running_mean is None
        if pad is None or not uses_batch or not bool(pad.any()):
            return super().forward(x)
        keep = (~pad).unsqueeze(1).to(x.dtype)  # (B, 1, N)
        mean, var, n = masked_moments(x, keep, (0, 2))
        if self.training and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.flatten().to(self.running_mean.dtype), m)
                count = n.flatten()
                unbiased = var.flatten() * count / (count - 1).clamp_min(1.0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None] if self.affine else y


def masked_moments(x: Tensor, keep: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and (biased) variance of ``x`` over ``dims`` counting only where ``keep`` is 1, and the count
    of kept elements per statistic (all broadcastable against ``x``)."""
    n = (keep * torch.ones_like(x)).sum(dims, keepdim=True).clamp_min(1.0)
    mean = (x * keep).sum(dims, keepdim=True) / n
    var = (((x - mean) * keep) ** 2).sum(dims, keepdim=True) / n
    return mean, var, n


class ConformerConv(nn.Module):
    """Conformer convolution module: pointwise + GLU, depthwise conv, norm, SiLU, pointwise.

    ``norm="batch"`` is the paper's batch norm (statistics over the valid frames of the batch,
    :class:`MaskedBatchNorm1d`); ``norm="group"`` normalises each utterance on its own (no dependence on
    the batch, so any batch size, bucketing or a single-utterance fine-tune behaves the same).

    The pointwise convs run as matrix products on ``(B, N, C)`` tokens and the depthwise conv as a
    ``(1, K)`` conv2d, whose oneDNN kernel is ~2.5x faster than ``Conv1d``'s on CPU (fp32 and bf16);
    the module is 1.6x faster forward+backward. Parameters keep the ``Conv1d`` shapes.
    """

    def __init__(self, dim: int, *, kernel_size: int = 15, drop: float = 0.0, norm: str = "group") -> None:
        super().__init__()
        if norm not in CONV_NORMS:
            raise ValueError(f"conv norm '{norm}' is not one of {CONV_NORMS}.")
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.bn = MaskedBatchNorm1d(dim) if norm == "batch" else nn.GroupNorm(1, dim)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        y = F.glu(F.linear(self.norm(x), self.pw1.weight[..., 0], self.pw1.bias), dim=-1)  # (B, N, C)
        if pad is not None:  # after the GLU: its bias would otherwise reach valid frames through the dw conv
            y = y.masked_fill(pad[..., None], 0.0)
        y = y.transpose(1, 2).unsqueeze(-2)  # (B, C, 1, N)
        y = F.conv2d(y, self.dw.weight.unsqueeze(-2), self.dw.bias, padding=(0, self.dw.padding[0]),
                     groups=self.dw.groups).squeeze(-2)  # (B, C, N)
        y = self.bn(y, pad) if isinstance(self.bn, MaskedBatchNorm1d) else self._group_norm(y, pad)
        y = F.silu(y).transpose(1, 2)  # (B, N, C)
        return x + self.drop(F.linear(y, self.pw2.weight[..., 0], self.pw2.bias))

    def _group_norm(self, y: Tensor, pad: Tensor | None) -> Tensor:
        """One group norm per utterance over its valid frames (padding must not move the statistics)."""
        # the shortcut branches on the data, which an exported graph cannot; the masked path is exact either way
        if pad is None or (not torch.compiler.is_exporting() and not bool(pad.any())):
            return self.bn(y)
        mean, var, _ = masked_moments(y, (~pad).unsqueeze(1).to(y.dtype), (1, 2))
        y = (y - mean) * torch.rsqrt(var + self.bn.eps)
        return y * self.bn.weight[None, :, None] + self.bn.bias[None, :, None]
