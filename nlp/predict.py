"""``mas-predict`` for text checkpoints: ``text="..."``, ``input=<files or folders of lines>`` or ``input=-``.

Defined behaviour on awkward input: empty text (or a file with no non-empty line) is an
``InputError``; characters/pieces outside the vocabulary become ``<unk>`` with a warning naming
them; input longer than the model's limit is truncated with a warning.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.train.errors import InputError
from core.train.inputs import STDIN, each_readable, finish_inputs, input_files
from nlp.data.modules import pad_sequences
from nlp.tokenizers import UNK

__all__ = ["TEXT_SUFFIXES", "encode_texts", "predict_classes", "predict_translations", "read_texts",
           "translation_options"]

TEXT_SUFFIXES = {".txt", ".text"}


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"input file {path} is not UTF-8 text.") from exc
    except OSError as exc:
        raise InputError(f"input file {path} cannot be read ({exc.strerror or type(exc).__name__}).") from exc
    lines = [t.strip() for t in text.splitlines() if t.strip()]
    if not lines:
        raise InputError(f"input file {path} has no non-blank line to predict.")
    return lines


def read_texts(request: dict, results: list[dict] | None = None) -> tuple[list[str], list[str | None]]:
    """Texts to predict and where each came from (a file name, or ``None``): ``text=`` (one string or a
    list, any characters), ``input=-`` (standard input), or ``input=`` text files, folders of ``.txt``
    files and lists of both, one text per non-blank line. Unreadable files are recorded in ``results``
    (see :mod:`core.train.inputs`) and the others are still read."""
    text, spec = request.get("text"), request.get("input")
    results = [] if results is None else results
    if text is not None and spec is not None:
        raise InputError("give either text=... or input=<file>, not both.")
    if text is not None:
        texts = [str(t).strip() for t in text] if isinstance(text, (list, tuple)) else [str(text).strip()]
        if not texts or any(not t for t in texts):
            raise InputError("the text to predict is empty; give at least one non-blank line.")
        return texts, [None] * len(texts)
    if spec is None:
        raise InputError('mas-predict needs text="...", input=<text file or folder>, or input=- for standard input.')
    if str(spec) == STDIN:
        texts = [t.strip() for t in sys.stdin.read().splitlines() if t.strip()]
        if not texts:
            raise InputError("standard input held no non-blank line to predict.")
        return texts, ["<stdin>"] * len(texts)
    texts, sources = [], []
    for path, lines in each_readable(input_files(spec, TEXT_SUFFIXES, "text"), _read_lines, results):
        texts += lines
        sources += [str(path)] * len(lines)
    if not texts:
        finish_inputs(results)
    return texts, sources


def encode_texts(encoder, texts: list[str], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids ``(B, N)`` and padding mask of ``texts`` on ``device``; warns about pieces outside the vocabulary."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = encoder.encode(texts, what="inputs")
    for w in caught:
        warnings.warn(str(w.message), stacklevel=3)
    unknown = sorted({c for t, s in zip(texts, ids) for c in t if encoder.tokenizer.encode(c) == [UNK]})
    if any((s == UNK).any() for s in ids):
        shown = "".join(unknown[:10]) if unknown else "some pieces"
        warnings.warn(f"characters outside the vocabulary were mapped to <unk>: {shown!r}", stacklevel=3)
    tokens, mask = pad_sequences(ids)
    return tokens.to(device), mask.to(device)


def _prepare(module, request: dict, encoder, results: list[dict]
             ) -> tuple[Any, list[str], list[str | None], tuple[Tensor, Tensor]]:
    """The model on ``request.device`` in eval mode, the input texts, their sources, and their padded ids
    and mask; unreadable files are recorded in ``results``."""
    device = str(request.get("device") or "cpu")
    texts, sources = read_texts(request, results)
    return module.model.to(device).eval(), texts, sources, encode_texts(encoder, texts, device)


def _record(source: str | None, **fields: Any) -> dict[str, Any]:
    return ({"file": source} if source else {}) | fields


@torch.no_grad()
def predict_classes(*, module, datamodule, request: dict, out_dir: str) -> list[dict[str, Any]]:
    """Print the top-k labels with probabilities for each text; returns them too."""
    results: list[dict[str, Any]] = []
    model, texts, sources, (tokens, mask) = _prepare(module, request, datamodule.encoder(), results)
    prob = model(tokens, mask).float().softmax(-1)
    k = max(1, min(int(request.get("top_k") or 1), prob.shape[-1]))
    for text, source, p in zip(texts, sources, prob):
        top = p.topk(k)
        preds = [(datamodule.classes[int(i)], float(v)) for v, i in zip(top.values, top.indices)]
        print(f"{preds[0][0]}\t{preds[0][1]:.3f}\t{text}" + ("" if k == 1 else "\t" + ", ".join(
            f"{c} {v:.3f}" for c, v in preds[1:])))
        results.append(_record(source, text=text, label=preds[0][0], prob=preds[0][1], top=preds))
    finish_inputs(results)
    return results


def translation_options(module, request: dict) -> dict[str, Any]:
    """``translate``'s search options from a request: ``beam_size`` (1 = greedy), ``length_penalty``, and
    ``max_len`` (default: the task's)."""
    return {"beam_size": int(request.get("beam_size") or 1),
            "length_penalty": float(request.get("length_penalty") or 0.0),
            "max_len": request.get("max_len") or getattr(module, "max_len", None)}


@torch.no_grad()
def predict_translations(*, module, datamodule, request: dict, out_dir: str) -> list[dict[str, Any]]:
    """Print one translation per input line (beam search by default, ``beam_size=1`` greedy)."""
    from nlp.models import translate

    results: list[dict[str, Any]] = []
    model, texts, sources, (src, mask) = _prepare(module, request, datamodule.src_encoder(), results)
    ids = translate(model, src, mask, **translation_options(module, request))
    for text, source, row in zip(texts, sources, ids):
        out = datamodule.tokenizer.decode(row.tolist())
        print(out)
        results.append(_record(source, text=text, translation=out))
    finish_inputs(results)
    return results
