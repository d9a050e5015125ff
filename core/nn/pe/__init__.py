"""Positional encodings on real-valued coordinates.

A model hands its tokens ``x: (B, N, C)`` and their coordinates ``pos: (B|1, N, P)``:
text ``P = 1`` (token index), image patches ``P = 2`` (row, column), audio frames ``P = 1``
(time in seconds, multiplied by ``coord_scale`` so one unit is one reference frame).

Every encoding has the same constructor shape, so a config can hold a ``_partial_`` of any of
them and each model finishes it::

    pe = factory(dim=C, num_heads=H, ndim=P, coord_scale=1.0, extent=(16, 16))

and the same three hooks, of which it implements the one matching its ``kind``:

* ``add(x, pos)``: additive encodings return ``x + embedding(pos)``, others return ``x``;
* ``attn_kwargs(pos_q, pos_k)``: rotary encodings give ``rotary=(Rotation, Rotation)``, bias
  encodings give ``bias=(B|1, H, Nq, Nk)``, others ``{}``. Attention modules take these kwargs.

Conventions (pinned by tests against closed-form values):

* Sinusoidal follows MAE: per axis, channels ``[sin(p * w_i), cos(p * w_i)]`` concatenated (not
  interleaved), ``w_i = base ** (-i / (d/2))`` for ``i < d/2`` (frequency divisor ``d/2``, as
  MAE; Whisper uses ``d/2 - 1``), ``base = 10000``. With ``P`` axes the channels split into ``P``
  equal blocks; :class:`SinusoidalPE` puts the column block first and the row block second, as
  MAE's table does (``axis_order="rows_first"`` gives the other order). :func:`sincos` itself
  encodes the axes in the order given.
* RoPE rotates "half" pairs ``(i, i + d/2)`` as GPT-NeoX, ``theta_i = base ** (-2i / d)``; the axial
  2-D form splits each head's channels into one block per axis, rows first.
* ALiBi uses the paper's head slopes; bias ``-slope * |p_q - p_k|`` (Euclidean distance in 2-D).
* RoPE-Mixed (Heo et al. 2024) learns one frequency vector per head and rotation pair; at
  initialisation the pairs alternate between a random per-head direction and its perpendicular,
  with the axial form's magnitudes.

Files: :mod:`.base` (coordinates, the hook interface, ``none``), :mod:`.absolute` (sinusoidal,
learned tables), :mod:`.rotary` (RoPE with its extrapolation scalings, RoPE-Mixed), :mod:`.alibi`.
"""

from core.nn.pe.absolute import LearnedPE, SinusoidalPE, resample_table
from core.nn.pe.alibi import ALiBi, alibi_slopes
from core.nn.pe.base import NoPE, PositionalEncoding, grid_coords, sequence_coords, sincos
from core.nn.pe.rotary import RoPE, RoPEMixed, Rotation

__all__ = [
    "ALiBi",
    "LearnedPE",
    "NoPE",
    "PositionalEncoding",
    "RoPE",
    "RoPEMixed",
    "Rotation",
    "SinusoidalPE",
    "alibi_slopes",
    "grid_coords",
    "resample_table",
    "sincos",
    "sequence_coords",
]
