"""Inference graphs a model offers for export (ONNX), declared by the model itself.

A model that can leave PyTorch implements ``export_graphs()`` returning :class:`ExportGraph`s: the
module to trace, example inputs at two sizes (the second one checks that the dynamic axes really are
dynamic), the input/output names and which axes vary. Torch only, like the rest of ``core.nn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

__all__ = ["ExportGraph"]


@dataclass
class ExportGraph:
    """One exported graph.

    Args:
        name: file stem (``model`` -> ``model.onnx``).
        module: what runs; ``module(*inputs)`` returns a tensor or a tuple of tensors.
        inputs: example inputs the graph is traced with.
        check_inputs: inputs of other sizes along the dynamic axes, compared after export.
        input_names, output_names: names of the graph's inputs and outputs, in order.
        dynamic_axes: ``{name: {axis: axis_name}}`` for inputs and outputs.
        note: one sentence for the export record (what the graph computes).
    """

    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    check_inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    note: str = ""
