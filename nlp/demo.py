"""``mas-demo`` for text checkpoints: typed text, its top labels or its translation, and one head of one
layer: encoder self-attention over the tokens (classification) or decoder cross-attention from the output
to the source (translation).

Text becomes ids exactly as ``mas-predict`` makes them (:func:`nlp.predict.encode_texts`: the checkpoint's
normalisation steps, tokenizer and length limit); the translation is searched with ``mas-predict``'s options.
"""

from __future__ import annotations

from typing import Any

import torch

from core.serve.maps import LayerDemo, attention_layers, head_map
from nlp.plots import pieces
from nlp.predict import encode_texts, translation_options
from nlp.tokenizers import BOS, EOS, PAD, SPECIALS

__all__ = ["DEMOS", "TextClasses", "Translations"]


def _device(model) -> str:
    return str(next(model.parameters()).device)


class TextClasses(LayerDemo):
    """A text classifier's demo: top-k labels; the map is encoder self-attention over the tokens."""

    input_kind = "text"
    outputs = {"top": "label"}
    shown = {"top": "top"}

    def __init__(self, *, module: Any, datamodule: Any) -> None:
        self.model, self.datamodule = module.model, datamodule
        self.layers = attention_layers(getattr(self.model, "encoder", None))  # the bag-of-tokens baseline has none

    @torch.no_grad()
    def attention(self, request: dict[str, Any], *, layer: int, head: int) -> dict[str, Any]:
        tokens, mask = encode_texts(self.datamodule.encoder(), [str(request["text"])], _device(self.model))
        attn = head_map(self.layers, layer, head, lambda: self.model(tokens, mask))  # (N', N'), prefix first
        labels = ["<cls>"] * getattr(self.model, "num_prefix", 0) + pieces(self.datamodule.tokenizer,
                                                                            tokens[0].tolist())
        return {"kind": "tokens", "attn": attn.numpy(), "labels": labels, "source": "encoder self-attention"}


class Translations(LayerDemo):
    """A translator's demo: the translation; the map is one decoder layer's cross-attention (output x source)."""

    input_kind = "text"
    outputs = {"text": "translation"}
    shown = {"text": "translation"}

    def __init__(self, *, module: Any, datamodule: Any) -> None:
        self.module, self.model, self.datamodule = module, module.model, datamodule
        self.layers = [m for blk in self.model.decoder.blocks for m in attention_layers(blk.cross_attn)]

    @torch.no_grad()
    def attention(self, request: dict[str, Any], *, layer: int, head: int) -> dict[str, Any]:
        from nlp.models import translate

        src, mask = encode_texts(self.datamodule.src_encoder(), [str(request["text"])], _device(self.model))
        out = [t for t in translate(self.model, src, mask, **translation_options(self.module, request))[0].tolist()
               if t != PAD]
        out = out[: out.index(EOS) + 1] if EOS in out else out
        # teacher-forced over the searched output, so row t is what produced output token t
        tgt_in = torch.tensor([[BOS, *out[:-1]]], device=src.device)
        attn = head_map(self.layers, layer, head, lambda: self.model(src, mask, tgt_in))  # (T, S)
        tok = self.datamodule.tokenizer
        return {"kind": "tokens", "attn": attn.numpy(), "labels": pieces(tok, out) if out else [SPECIALS[EOS]],
                "xlabels": pieces(tok, src[0].tolist()), "source": "decoder cross-attention (output x source)"}


#: predictor ``_target_`` -> demo (read by :mod:`core.serve.session`)
DEMOS = {"nlp.predict.predict_classes": TextClasses, "nlp.predict.predict_translations": Translations}
