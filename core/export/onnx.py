"""ONNX export of a model's declared inference graphs, each checked against PyTorch with onnxruntime.

Every :class:`core.nn.graphs.ExportGraph` is exported with torch's exporter (``torch.export`` based,
dynamic axes as declared), then run by onnxruntime on its example inputs and on a second set of
other sizes along the dynamic axes; the largest absolute difference from PyTorch is recorded and must
stay within ``atol``. A graph that fails the check is kept on disk beside the record for inspection,
and the export ends with one sentence.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.nn.graphs import ExportGraph
from core.train.errors import ConfigError, InputError

__all__ = ["ExportCheckError", "export_onnx", "max_abs_difference"]


class ExportCheckError(InputError):
    """onnxruntime's outputs differ from PyTorch's by more than the tolerance."""


def _onnxruntime():
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError("format=onnx needs the 'onnx' extra: pip install -e '.[onnx]'.") from exc
    return onnxruntime


def _as_tuple(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@torch.no_grad()
def max_abs_difference(session: Any, graph: ExportGraph, inputs: tuple[Tensor, ...]) -> float:
    """Largest ``|onnxruntime - PyTorch|`` over every output of ``graph`` on ``inputs``."""
    expected = _as_tuple(graph.module(*inputs))
    got = session.run(None, {n: t.numpy() for n, t in zip(graph.input_names, inputs)})
    if len(got) != len(expected):
        raise ExportCheckError(f"{graph.name}.onnx returns {len(got)} outputs, PyTorch {len(expected)}.")
    worst = 0.0
    for name, g, e in zip(graph.output_names, got, expected):
        if tuple(g.shape) != tuple(e.shape):
            raise ExportCheckError(f"{graph.name}.onnx output '{name}' has shape {tuple(g.shape)}, PyTorch "
                                   f"{tuple(e.shape)}: an axis that should be dynamic was fixed at export.")
        worst = max(worst, float((torch.from_numpy(g).double() - e.double()).abs().max()) if e.numel() else 0.0)
    return worst


def _export(graph: ExportGraph, path: Path, opset: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    for name in ("onnx_ir", "onnxscript"):  # their optimiser passes log every folded initializer at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, graph.inputs, str(tmp), input_names=graph.input_names,
                          output_names=graph.output_names, dynamic_axes=graph.dynamic_axes, opset_version=opset,
                          dynamo=True, external_data=False)
    os.replace(tmp, path)


def export_onnx(model: nn.Module, out_dir: str | Path, *, opset: int = 18, atol: float = 1e-4) -> list[dict]:
    """Export and check every graph ``model.export_graphs()`` declares; returns one record per graph."""
    ort = _onnxruntime()
    if not hasattr(model, "export_graphs"):
        raise ConfigError(f"model {type(model).__name__} declares no inference graphs to export to ONNX.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    records = []
    for graph in model.export_graphs():
        path = out / f"{graph.name}.onnx"
        try:
            _export(graph, path, opset)
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are long; one sentence with the cause
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"torch could not export the '{graph.name}' graph of {type(model).__name__} to ONNX "
                             f"({type(exc).__name__}: {first[:200]}).") from exc
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        diffs = [max_abs_difference(session, graph, inputs) for inputs in (graph.inputs, graph.check_inputs)]
        records.append({
            "graph": graph.name, "file": path.name, "note": graph.note, "opset": opset,
            "inputs": graph.input_names, "outputs": graph.output_names,
            "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in graph.dynamic_axes.items()},
            "checked_shapes": [[list(t.shape) for t in inputs] for inputs in (graph.inputs, graph.check_inputs)],
            "max_abs_diff": diffs, "atol": atol, "bytes": path.stat().st_size,
        })
        if max(diffs) > atol:
            raise ExportCheckError(f"{path} differs from PyTorch by {max(diffs):.2e} (more than atol={atol:g}); "
                                   "the file is kept for inspection.")
    return records
