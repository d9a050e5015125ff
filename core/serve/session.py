"""A checkpoint ready for the demo page: ``mas-predict``'s predictor on one upload, and one attention map
(a chosen layer and head) drawn as a PNG with a labelled colour scale.

The task's demo comes from its domain, never from core: the checkpoint names its predictor
(``predictor._target_``), and the ``DEMOS`` table in the ``demo`` module of that predictor's top-level package
maps the target to a :class:`core.train.protocols.Demonstrates` class (the same role file in every domain,
as ``predict.py`` is).
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.train.errors import ConfigError, InputError
from core.train.protocols import Demonstrates

__all__ = ["ATTENTION_PNG_SIZE", "Answer", "DemoSession", "REQUEST_KEYS", "find_demo", "predict_options"]

#: the prediction options a request carries, with mas-predict's defaults (conf/predict.yaml)
REQUEST_KEYS = ("top_k", "beam_size", "length_penalty", "max_len", "chunk_seconds", "device")
_FIG_INCHES, _DPI = (5.0, 6.4), 100
ATTENTION_PNG_SIZE = (int(_FIG_INCHES[0] * _DPI), int(_FIG_INCHES[1] * _DPI))  # (width, height) in pixels
_WHAT = {"image": "upload an image", "audio": "upload a recording (WAV or FLAC)", "text": "type a text"}


def predict_options(cfg: DictConfig | dict | None = None) -> dict[str, Any]:
    """The request options of ``cfg`` (a demo or predict config), missing ones from ``mas-predict``'s defaults."""
    defaults = OmegaConf.load(resources.files("conf").joinpath("predict.yaml").open("r"))
    given = {} if cfg is None else (OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig)
                                    else dict(cfg))
    return {k: given.get(k, defaults.get(k)) for k in REQUEST_KEYS}


def find_demo(cfg: DictConfig, module: Any, datamodule: Any) -> Demonstrates:
    """The domain's demo for the checkpoint's predictor, or one sentence saying there is none."""
    target = str(OmegaConf.select(cfg, "predictor._target_", default="") or "")
    if not target:
        raise ConfigError(f"task '{cfg.get('task')}' has no predictor configured, so it has no demo.")
    package = f"{target.split('.', 1)[0]}.demo"
    try:
        table = getattr(importlib.import_module(package), "DEMOS", {})
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        table = {}
    if target not in table:
        raise ConfigError(f"task '{cfg.get('task')}' has no demo: its predictor {target} is not listed in "
                          f"{package}.DEMOS.")
    demo = table[target](module=module, datamodule=datamodule)
    if not isinstance(demo, Demonstrates):
        raise TypeError(f"{type(demo).__name__} does not implement core.train.protocols.Demonstrates.")
    return demo


@dataclass
class Answer:
    """One prediction as the page shows it."""

    record: dict[str, Any]  # the predictor's record: what mas-predict gives for this input
    shown: dict[str, Any]  # the demo's view of it: top / text / image
    attention: Path | None = None  # PNG of the chosen layer and head
    note: str = ""  # why there is no map, when there is none
    layer: int | None = None
    head: int | None = None


def headline(shown: dict[str, Any]) -> str:
    """A one-line summary of a prediction, for the map's caption."""
    if shown.get("top"):
        label, prob = shown["top"][0]
        return f"predicted {label} ({prob:.2f})"
    text = str(shown.get("text", ""))
    return f'output "{text if len(text) <= 48 else text[:45] + "..."}"'


def draw_attention(example: dict[str, Any], path: Path, *, layer: int, head: int, caption: str) -> Path:
    """The example's input above its map with a colour scale (core.report.gallery's drawing), titled
    ``layer L, head H``; written as a PNG of :data:`ATTENTION_PNG_SIZE` pixels."""
    from matplotlib.figure import Figure  # a Figure of its own, not pyplot's global state: the page serves threads

    from core.report.gallery import draw_example

    title = f"layer {layer}, head {head}"
    fig = Figure(figsize=_FIG_INCHES, dpi=_DPI)
    ax_top, ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 2.4]})
    draw_example(ax_top, ax, example)
    ax_top.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, metadata={"Title": title})
    return path


class DemoSession:
    """A checkpoint loaded once (``core.train.run.load_for_predict``) and its task's predictor and demo.

    Args:
        ckpt_path: a checkpoint written by ``mas-train``; a missing or corrupt one gets one sentence.
        out_dir: where each prediction writes its files (masks, overlays, transcripts, attention PNGs).
        options: prediction options (:data:`REQUEST_KEYS`); missing ones take ``mas-predict``'s defaults.
    """

    def __init__(self, ckpt_path: str | Path, *, out_dir: str | Path, options: dict | None = None) -> None:
        import hydra

        from core.train.run import load_for_predict

        self.ckpt_path = str(ckpt_path)
        self.options = predict_options(options)
        self.cfg, self.datamodule, self.module = load_for_predict(self.ckpt_path)
        self.module.to(str(self.options.get("device") or "cpu"))
        self.demo = find_demo(self.cfg, self.module, self.datamodule)
        self.predictor = hydra.utils.instantiate(self.cfg.predictor)
        self.out_dir = Path(out_dir)
        self._count = itertools.count()

    @property
    def input_kind(self) -> str:
        return self.demo.input_kind

    def describe(self) -> str:
        """One line about the checkpoint: task, attention, PE."""
        meta = self.cfg.get("meta") or {}  # the run's choices, as metrics.json records them
        return (f"{self.cfg.get('task')} (experiment {meta.get('experiment', '?')}, attention "
                f"{meta.get('attention', '?')}, pe {meta.get('pe', '?')})")

    def request(self, upload: Any) -> dict[str, Any]:
        """mas-predict's request for one upload: a file path as ``input`` or a text as ``text``."""
        if upload is None or (isinstance(upload, str) and not upload.strip()):
            raise InputError(f"{_WHAT.get(self.input_kind, 'give an input')} first.")
        key = "text" if self.input_kind == "text" else "input"
        return {**self.options, key: str(upload), "out_dir": None}

    def _checked(self, layer: int | None, head: int | None) -> tuple[int, int]:
        layers, heads = self.demo.attention_shape()
        layer = layers - 1 if layer is None else int(layer)
        head = 0 if head is None else int(head)
        if not 0 <= layer < layers:
            raise InputError(f"layer={layer} is out of range: the model has {layers} attention layers (0-{layers - 1}).")
        if not 0 <= head < heads:
            raise InputError(f"head={head} is out of range: each layer has {heads} heads (0-{heads - 1}).")
        return layer, head

    def predict(self, upload: Any, *, layer: int | None = None, head: int | None = 0) -> Answer:
        """Run the predictor on ``upload`` and draw ``layer`` (default: the last) / ``head``; a bad upload or
        choice raises one sentence (:class:`InputError`)."""
        request = self.request(upload)
        has_maps = self.demo.attention_shape()[0] > 0
        if has_maps:
            layer, head = self._checked(layer, head)
        out = self.out_dir / f"{next(self._count):04d}"
        record = self.predictor(module=self.module, datamodule=self.datamodule, request=request, out_dir=str(out))[0]
        shown = self.demo.show(record)
        if not has_maps:
            return Answer(record, shown, note="This model has no attention maps to show (no attention layer of "
                                              "this suite's kind).")
        example = self.demo.attention(request, layer=layer, head=head)
        if example is None:
            return Answer(record, shown, note="The input is silent: there is no attention map to show.",
                          layer=layer, head=head)
        png = draw_attention(example, out / f"attention_layer{layer}_head{head}.png", layer=layer, head=head,
                             caption=headline(shown))
        return Answer(record, shown, attention=png, layer=layer, head=head)
