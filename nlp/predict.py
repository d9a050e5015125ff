"""``mas-predict`` for text checkpoints: ``text="..."`` or ``input=<file of lines>``.

Defined behaviour on awkward input: empty text (or a file with no non-empty line) is an
``InputError``; characters/pieces outside the vocabulary become ``<unk>`` with a warning naming
them; input longer than the model's limit is truncated with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.train.errors import InputError
from nlp.data.modules import pad_sequences
from nlp.tokenizers import UNK

__all__ = ["predict_classes", "predict_translations", "read_texts"]


def read_texts(request: dict) -> list[str]:
    """Lines to predict from ``text=`` (one string or a list) or ``input=`` (text files, one item a line)."""
    text, spec = request.get("text"), request.get("input")
    if text is not None and spec is not None:
        raise InputError("give either text=... or input=<file>, not both.")
    if text is not None:
        texts = [str(t) for t in text] if isinstance(text, (list, tuple)) else [str(text)]
    elif spec is not None:
        texts = []
        for item in spec if isinstance(spec, (list, tuple)) else [spec]:
            p = Path(str(item)).expanduser()
            if not p.is_file():
                raise InputError(f"input file {p} does not exist.")
            try:
                texts += p.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as exc:
                raise InputError(f"input file {p} is not UTF-8 text.") from exc
        texts = [t for t in texts if t.strip()]
    else:
        raise InputError('mas-predict needs text="..." or input=<file with one text per line>.')
    texts = [t.strip() for t in texts]
    if not texts or any(not t for t in texts):
        raise InputError("the text to predict is empty; give at least one non-blank line.")
    return texts


def _encode(encoder, texts: list[str], device: str) -> tuple[torch.Tensor, torch.Tensor]:
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


def _prepare(module, request: dict, encoder) -> tuple[Any, list[str], tuple[Tensor, Tensor]]:
    """The model on ``request.device`` in eval mode, the input texts, and their padded ids and mask."""
    device = str(request.get("device") or "cpu")
    texts = read_texts(request)
    return module.model.to(device).eval(), texts, _encode(encoder, texts, device)


@torch.no_grad()
def predict_classes(*, module, datamodule, request: dict, out_dir: str) -> list[dict[str, Any]]:
    """Print the top-k labels with probabilities for each text; returns them too."""
    model, texts, (tokens, mask) = _prepare(module, request, datamodule.encoder())
    prob = model(tokens, mask).float().softmax(-1)
    k = max(1, min(int(request.get("top_k") or 1), prob.shape[-1]))
    results = []
    for text, p in zip(texts, prob):
        top = p.topk(k)
        preds = [(datamodule.classes[int(i)], float(v)) for v, i in zip(top.values, top.indices)]
        print(f"{preds[0][0]}\t{preds[0][1]:.3f}\t{text}" + ("" if k == 1 else "\t" + ", ".join(
            f"{c} {v:.3f}" for c, v in preds[1:])))
        results.append({"text": text, "label": preds[0][0], "prob": preds[0][1], "top": preds})
    return results


@torch.no_grad()
def predict_translations(*, module, datamodule, request: dict, out_dir: str) -> list[dict[str, Any]]:
    """Print one translation per input line (beam search by default, ``beam_size=1`` greedy)."""
    from nlp.models import translate

    model, texts, (src, mask) = _prepare(module, request, datamodule.src_encoder())
    beam = int(request.get("beam_size") or 1)
    max_len = request.get("max_len") or getattr(module, "max_len", None)
    ids = translate(model, src, mask, beam_size=beam, length_penalty=float(request.get("length_penalty") or 0.0),
                    max_len=max_len)
    results = []
    for text, row in zip(texts, ids):
        out = datamodule.tokenizer.decode(row.tolist())
        print(out)
        results.append({"text": text, "translation": out})
    return results
