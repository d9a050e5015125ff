"""Reference formulas restated from their papers' code, independent of this suite's implementations."""

import numpy as np


def mae_2d_sincos(embed_dim: int, gh: int, gw: int):
    """MAE's ``get_2d_sincos_pos_embed`` (facebookresearch/mae, util/pos_embed.py), restated in numpy."""
    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.stack(np.meshgrid(np.arange(gw, dtype=np.float64), np.arange(gh, dtype=np.float64)), axis=0)
    return np.concatenate([one_axis(embed_dim // 2, grid[0]), one_axis(embed_dim // 2, grid[1])], axis=1)
