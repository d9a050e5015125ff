"""Export graphs of the vision models (see :mod:`core.nn.graphs`): images in, logits out.

The graph takes the tensor the datamodule feeds the model (framed, normalised, at the training size);
the batch axis is dynamic.
"""

from __future__ import annotations

import torch
from torch import nn

from core.nn.graphs import ExportGraph

__all__ = ["image_graph"]


def image_graph(model: nn.Module, *, in_chans: int, img_size: tuple[int, int], output: str, note: str) -> ExportGraph:
    h, w = img_size
    gen = torch.Generator().manual_seed(0)
    images = [torch.randn(b, in_chans, h, w, generator=gen) for b in (2, 3)]
    return ExportGraph("model", model, (images[0],), (images[1],), ["image"], [output],
                       {"image": {0: "batch"}, output: {0: "batch"}}, note=note)
