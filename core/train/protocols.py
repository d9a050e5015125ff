"""What core relies on from a domain package, written as ``typing.Protocol``s.

A domain never registers itself with core; it implements these methods and core checks for them
with ``isinstance`` (the Protocols are runtime-checkable):

* models: :class:`DeclaresParamGroups` (weight-decay exemptions and layer groups, as timm models do) and
  a ``pos_ndim`` class attribute (the dimensionality of their token coordinates, read by start-up
  validation); optionally :class:`ExplainsAttention` (an attention example for the gallery) and
  :class:`ExportsGraphs` (inference graphs for ``mas-export format=onnx``);
* datamodules: optionally :class:`ProvidesModelFacts` (facts the model needs from the data: vocabulary,
  number of classes) and, through Lightning, ``state_dict``/``load_state_dict`` for what a checkpoint
  must carry (tokenizer, class names); ``setup("predict")`` builds no dataset;
* tasks: optionally :class:`ShowsAttention`;
* ``predictor:`` targets are :class:`Predictor` callables; a domain's ``demo.py`` may list, in its ``DEMOS``
  table, a :class:`Demonstrates` class per predictor target for ``mas-demo``;
* tokenizers follow :class:`Tokenizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["DeclaresParamGroups", "Demonstrates", "ExplainsAttention", "Predictor", "ProvidesModelFacts",
           "ShowsAttention", "Tokenizer"]


@runtime_checkable
class DeclaresParamGroups(Protocol):
    """timm's declarations: ``no_weight_decay()`` names (fnmatch patterns allowed) that take no weight
    decay (1-D parameters never do), and ``group_matcher()`` regexes that map parameter names to layers
    (``stem``, ``blocks`` with the block index), read by layer-wise decay and freezing."""

    def no_weight_decay(self) -> set[str]: ...

    def group_matcher(self, coarse: bool = False) -> dict: ...


@runtime_checkable
class ExportsGraphs(Protocol):
    """A model that offers its inference graphs (:class:`core.nn.graphs.ExportGraph`) for ONNX export."""

    def export_graphs(self) -> list: ...


@runtime_checkable
class ProvidesModelFacts(Protocol):
    """A datamodule whose facts (vocabulary, classes, rates) complete the model's constructor arguments."""

    def model_kwargs(self) -> dict[str, Any]: ...


@runtime_checkable
class ExplainsAttention(Protocol):
    """A model that can show one attention map of its last encoder layer for ``inputs`` (one item)."""

    def attention_example(self, inputs: tuple[Tensor, ...], label: int, datamodule: Any) -> dict[str, Any]: ...


@runtime_checkable
class ShowsAttention(Protocol):
    """A task that can draw one attention example from a test batch (see :mod:`core.report.gallery`)."""

    def attention_example(self, batch: Any, datamodule: Any = None) -> dict[str, Any]: ...


class Predictor(Protocol):
    """``mas-predict``'s action: read ``request['input']`` (or ``text``), print and return one record per item."""

    def __call__(self, *, module: Any, datamodule: Any, request: dict[str, Any], out_dir: str) -> list[dict]: ...


@runtime_checkable
class Demonstrates(Protocol):
    """``mas-demo``'s view of one task, built as ``cls(module=..., datamodule=...)`` from a domain's ``DEMOS``
    table (predictor ``_target_`` -> class). The page runs the task's :class:`Predictor` on one upload; this
    says what to upload, how to show the predictor's record, and draws attention maps per layer and head.

    ``input_kind``: ``"image"`` or ``"audio"`` (a file path, passed as ``request['input']``) or ``"text"``
    (``request['text']``). ``outputs``: what :meth:`show` returns, key -> caption, keys among ``top``
    (``[(label, probability)]``), ``text`` (a string) and ``image`` (a PNG file path).
    """

    input_kind: str
    outputs: dict[str, str]

    def attention_shape(self) -> tuple[int, int]:
        """``(layers, heads)`` the layer and head choices walk; ``(0, 0)`` for a model without attention maps."""
        ...

    def show(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def attention(self, request: dict[str, Any], *, layer: int, head: int) -> dict[str, Any] | None:
        """One map (``layer``, ``head``) for the request's input, as a :mod:`core.report.gallery` example;
        ``None`` where the input has nothing to attend to (silence)."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """Text to ids and back; travels in checkpoints through ``state_dict()``."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def piece(self, i: int) -> str: ...

    def state_dict(self) -> dict[str, Any]: ...
