"""Additive absolute encodings: fixed sinusoids and learned tables (resampled to new sizes)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.nn.pe.base import PositionalEncoding, sincos

__all__ = ["LearnedPE", "SinusoidalPE", "resample_table"]


class SinusoidalPE(PositionalEncoding):
    """Fixed sinusoidal embedding added to the tokens: 1-D text, 2-D patch grid, audio time-frame."""

    kind = "additive"
    AXIS_ORDERS = ("columns_first", "rows_first")

    def __init__(self, dim: int, num_heads: int, ndim: int, *, base: float = 10000.0,
                 axis_order: str = "columns_first", **kw) -> None:
        super().__init__(dim, num_heads, ndim, **kw)
        if dim % (2 * ndim) != 0:
            raise ValueError(f"sinusoidal PE needs dim={dim} divisible by {2 * ndim} for {ndim}-D positions.")
        if axis_order not in self.AXIS_ORDERS:
            raise ValueError(f"axis_order={axis_order!r}: choose one of {', '.join(self.AXIS_ORDERS)}.")
        self.base, self.axis_order = base, axis_order

    def embed(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.axis_order == "columns_first":  # MAE: the last coordinate axis gets the first block
            pos = pos.flip(-1)
        return sincos(pos, self.dim, self.base)


def resample_table(table: Tensor, size: tuple[int, ...]) -> Tensor:
    """A learned table ``(*extent, C)`` resampled to ``(*size, C)``: (bi)linear, ``align_corners=True``,
    so values at matching grid points are kept."""
    t = table.movedim(-1, 0)[None].float()  # (1, C, *extent)
    mode = "linear" if table.ndim == 2 else "bilinear"
    return F.interpolate(t, size=tuple(size), mode=mode, align_corners=True)[0].movedim(0, -1).to(table.dtype)


class LearnedPE(PositionalEncoding):
    """Learned absolute embedding table over a grid of ``extent`` positions (1-D or 2-D).

    Coordinates (after ``coord_scale``) are rounded to table indices. When a sequence runs past the
    table (1-D) or a new grid differs from the trained one (2-D), the table is resampled with
    bilinear interpolation, ``align_corners=True`` (values at matching grid points are kept).
    """

    kind = "additive"
    serves = (1, 2)

    def __init__(self, dim: int, num_heads: int, ndim: int, *, extent: tuple[int, ...] | None = None,
                 init_std: float = 0.02, **kw) -> None:
        if extent is None:
            raise ValueError("learned PE needs the model's maximum length or grid size (extent).")
        extent = tuple(int(e) for e in extent)
        super().__init__(dim, num_heads, ndim, extent=extent, **kw)
        if len(extent) != ndim:
            raise ValueError(f"learned PE extent {extent} does not match {ndim}-D positions.")
        self.table = nn.Parameter(torch.randn(*extent, dim) * init_std)

    def resampled(self, size: tuple[int, ...]) -> Tensor:
        """The table resampled to ``size`` along each axis, ``(*size, C)``."""
        return resample_table(self.table, size)

    def embed(self, pos: Tensor) -> Tensor:
        idx = self._check(pos).round().long()  # (B|1, N, P)
        need = tuple(int(idx[..., a].max()) + 1 for a in range(self.ndim))
        if self.ndim == 1 and need[0] <= self.extent[0]:
            table = self.table
        elif self.ndim == 2 and need == self.extent:
            table = self.table
        else:
            if self.ndim == 1:
                warnings.warn(f"sequence of {need[0]} positions exceeds the learned PE table "
                              f"({self.extent[0]}); interpolating.", stacklevel=2)
            table = self.resampled(need)
        if self.ndim == 1:
            return table[idx[..., 0]]
        return table[idx[..., 0], idx[..., 1]]
