"""``mas-demo ckpt_path=PATH``: a small Gradio page for any checkpoint (a Hydra app on ``conf/demo.yaml``).

The page offers the upload the task takes (an image, a recording or a text, declared by the domain's demo),
runs ``mas-predict``'s predictor on it and shows the prediction (top-k labels with probabilities, the
transcript, the translation, the mask overlay) and the attention map of the chosen layer and head. It
serves on ``host:port`` (127.0.0.1 by default) and is never shared through Gradio's tunnel (offline use).
Gradio is an optional extra, imported only here when the page is built.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.serve.session import Answer, DemoSession, predict_options
from core.train.cli import CONF, guarded
from core.train.errors import ConfigError, InputError
from core.train.overrides import check_command_line

__all__ = ["build_app", "main", "page_values", "require_gradio"]

_INSTALL = "install the 'demo' extra: pip install -e '.[demo]'"


def require_gradio():
    """The ``gradio`` module, or one sentence saying how to install it (:class:`ConfigError`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
    try:
        import gradio
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return gradio


def page_values(answer: Answer, keys: Sequence[str]) -> list[Any]:
    """The output components' values for one answer: the demo's ``outputs`` in order, the map, the note."""
    values = []
    for key in keys:
        value = answer.shown.get(key)
        if key == "top" and value is not None:
            value = {str(label): float(p) for label, p in value}  # gr.Label's {label: confidence}
        values.append(str(value) if key == "image" and value is not None else value)
    return [*values, str(answer.attention) if answer.attention else None, answer.note]


def _input_component(gr, kind: str):
    if kind == "image":  # type filepath, no image_mode: the file reaches the predictor as uploaded
        return gr.Image(type="filepath", image_mode=None, sources=["upload"], label="image", height=280,
                        elem_id="upload")
    if kind == "audio":  # format None: no conversion, the predictor reads WAV/FLAC at any rate itself
        return gr.Audio(type="filepath", format=None, sources=["upload"], label="recording (WAV, FLAC)",
                        elem_id="upload")
    return gr.Textbox(label="text", lines=2, placeholder="type a text, then press Predict", elem_id="upload")


def _output_component(gr, key: str, caption: str, top_k: int):
    if key == "top":
        return gr.Label(label=caption, num_top_classes=top_k, elem_id="out-top")
    if key == "text":
        return gr.Textbox(label=caption, interactive=False, elem_id="out-text")
    return gr.Image(label=caption, type="filepath", format="png", interactive=False, elem_id="out-image")


def build_app(session: DemoSession, *, examples: Sequence[str] = ()):
    """The Gradio Blocks page for ``session``; ``examples`` (files or texts) become one-click examples."""
    gr = require_gradio()
    demo = session.demo
    layers, heads = demo.attention_shape()
    keys = list(demo.outputs)
    top_k = int(session.options.get("top_k") or 3)

    def run(upload, layer, head):
        try:
            answer = session.predict(upload, layer=None if layer is None else int(layer),
                                     head=None if head is None else int(head))
        except (InputError, ConfigError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return page_values(answer, keys)

    def rerun(upload, layer, head):  # a new layer or head: redraw only when there is something to show
        return gr.skip() if upload in (None, "") else run(upload, layer, head)

    with gr.Blocks(title=f"mas-demo: {session.cfg.get('task')}", analytics_enabled=False) as app:
        gr.Markdown(f"### mas-demo: {session.describe()}\n`{session.ckpt_path}`")
        with gr.Row():
            with gr.Column():
                upload = _input_component(gr, demo.input_kind)
                with gr.Row(visible=layers > 0):
                    layer = gr.Dropdown(list(range(max(layers, 1))), value=max(layers - 1, 0), label="layer",
                                        info=f"0-{layers - 1}", elem_id="layer")
                    head = gr.Dropdown(list(range(max(heads, 1))), value=0, label="head", info=f"0-{heads - 1}",
                                       elem_id="head")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[upload], label="examples",
                                elem_id="examples")
            with gr.Column():
                outputs = [_output_component(gr, k, demo.outputs[k], top_k) for k in keys]
                attention = gr.Image(label="attention map", type="filepath", format="png", interactive=False,
                                     elem_id="attention")
                note = gr.Markdown(elem_id="note")
        targets = [*outputs, attention, note]
        button.click(run, [upload, layer, head], targets)
        if demo.input_kind == "text":
            upload.submit(run, [upload, layer, head], targets)
        for choice in (layer, head):
            choice.change(rerun, [upload, layer, head], targets)
    return app


def _examples(cfg: DictConfig, kind: str) -> list[str]:
    items = [str(e) for e in (OmegaConf.to_container(cfg.examples) if cfg.get("examples") else [])]
    if kind != "text":
        missing = [e for e in items if not Path(e).expanduser().is_file()]
        if missing:
            raise InputError(f"example file {missing[0]} does not exist.")
        items = [str(Path(e).expanduser().resolve()) for e in items]
    return items


@hydra.main(version_base="1.3", config_path=CONF, config_name="demo")
def _demo(cfg: DictConfig) -> None:
    from core.train.run import set_threads

    def go():
        if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.get("ckpt_path"):
            raise ConfigError("mas-demo needs ckpt_path=<path to a .ckpt written by mas-train>.")
        if cfg.get("input") is not None or cfg.get("text") is not None:
            raise ConfigError("mas-demo takes no input= or text=: upload on the page, or list examples=[...].")
        set_threads(cfg)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests, logged at INFO
        out_dir = cfg.get("out_dir") or HydraConfig.get().runtime.output_dir
        session = DemoSession(cfg.ckpt_path, out_dir=out_dir, options=predict_options(cfg))
        examples = _examples(cfg, session.input_kind)
        app = build_app(session, examples=examples)
        allowed = sorted({str(Path(e).parent) for e in examples} if session.input_kind != "text" else set())
        try:
            app.launch(server_name=str(cfg.host), server_port=int(cfg.port), share=False, inbrowser=False,
                       allowed_paths=allowed, footer_links=[], quiet=True, prevent_thread_lock=True)
        except OSError:
            raise InputError(f"cannot serve on {cfg.host}:{cfg.port}: the port is in use or cannot be opened; "
                             "choose another with port=.") from None
        print(f"mas-demo: {session.describe()} on http://{cfg.host}:{cfg.port} (Ctrl+C stops)", flush=True)
        app.block_thread()  # until Ctrl+C, which closes the server

    guarded(go)


def main() -> None:
    """Console entry ``mas-demo``: gradio first (one sentence when the extra is missing), then the command line."""
    guarded(require_gradio)
    guarded(lambda: check_command_line("demo", sys.argv[1:], "mas-demo"))
    _demo()


if __name__ == "__main__":
    main()
