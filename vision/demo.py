"""``mas-demo`` for vision checkpoints: an uploaded picture, its top classes or mask overlay, and the
attention of one head of one encoder layer over the patch grid.

The picture becomes the model's input exactly as ``mas-predict`` makes it (:mod:`vision.predict`:
``read_image`` then ``model_input`` for classification, ``mask_input`` for segmentation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.serve.maps import LayerDemo, attention_layers, head_map
from vision.predict import mask_input, model_input, read_image

__all__ = ["DEMOS", "ImageClasses", "ImageMasks"]


class ImageClasses(LayerDemo):
    """A classifier's demo: top-k classes of one picture; the map is the class query (or the mean query)
    over the patch grid."""

    input_kind = "image"
    outputs = {"top": "class"}
    shown = {"top": "top"}
    prepare = staticmethod(model_input)  # the classifier's framing of a picture (mas-predict's)

    def __init__(self, *, module: Any, datamodule: Any) -> None:
        self.model, self.datamodule = module.model, datamodule
        self.backbone = getattr(self.model, "backbone", self.model)  # a segmenter keeps its ViT there
        self.layers = attention_layers(getattr(self.backbone, "encoder", None))

    @torch.no_grad()
    def attention(self, request: dict[str, Any], *, layer: int, head: int) -> dict[str, Any]:
        channels = self.model.patch_embed.proj.in_channels
        im = read_image(Path(request["input"]), channels)
        x = self.prepare(im, self.datamodule, self.model.img_size)[None]  # (1, C, H, W)
        attn = head_map(self.layers, layer, head, lambda: self.model(x))  # (N', N') with the prefix tokens
        p = self.backbone.num_prefix
        query = attn[0, p:] if p else attn.mean(0)  # what the pooled output reads from each patch
        gh, gw = (s // self.backbone.patch_size for s in x.shape[-2:])
        return {"kind": "patches", "attn": attn.numpy(), "image": x[0].mean(0).numpy(),
                "query_map": query.reshape(gh, gw).numpy(), "source": "encoder self-attention"}


class ImageMasks(ImageClasses):
    """A segmenter's demo: the mask overlay and the class fractions of one picture."""

    outputs = {"image": "mask overlay", "top": "class fractions"}
    prepare = staticmethod(mask_input)

    def show(self, record: dict[str, Any]) -> dict[str, Any]:
        fractions = sorted(record["fractions"].items(), key=lambda kv: -kv[1])
        return {"image": record["overlay"], "top": fractions}


#: predictor ``_target_`` -> demo (read by :mod:`core.serve.session`)
DEMOS = {"vision.predict.predict_images": ImageClasses, "vision.predict.predict_masks": ImageMasks}
