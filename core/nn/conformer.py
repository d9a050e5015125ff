"""Conformer convolution module (Gulati et al. 2020), the optional convolution slot of an encoder layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.dropout import Dropout

__all__ = ["ConformerConv"]


class ConformerConv(nn.Module):
    """Conformer convolution module: pointwise + GLU, depthwise conv, norm, SiLU, pointwise.

    The pointwise convs run as matrix products on ``(B, N, C)`` tokens and the depthwise conv as a
    ``(1, K)`` conv2d, whose oneDNN kernel is ~2.5x faster than ``Conv1d``'s on CPU (fp32 and bf16);
    the module is 1.6x faster forward+backward. Parameters keep the ``Conv1d`` shapes.
    """

    def __init__(self, dim: int, *, kernel_size: int = 15, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.bn = nn.GroupNorm(1, dim)  # batch-size independent (works with bucketed batches)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        y = self.norm(x)
        if pad is not None:
            y = y.masked_fill(pad[..., None], 0.0)
        y = F.glu(F.linear(y, self.pw1.weight[..., 0], self.pw1.bias), dim=-1)  # (B, N, C)
        y = y.transpose(1, 2).unsqueeze(-2)  # (B, C, 1, N)
        y = F.conv2d(y, self.dw.weight.unsqueeze(-2), self.dw.bias, padding=(0, self.dw.padding[0]),
                     groups=self.dw.groups)
        y = F.silu(self.bn(y)).squeeze(-2).transpose(1, 2)  # (B, N, C)
        return x + self.drop(F.linear(y, self.pw2.weight[..., 0], self.pw2.bias))
