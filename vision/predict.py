"""``mas-predict`` for vision checkpoints: top-k labels (classification) or masks (segmentation).

Any PIL image mode (L, RGB, RGBA, palette, ...) and size is accepted: images are converted to the
model's channels and resized to its input size, or framed the way the training images are framed where
the datamodule says how (``frame_picture``: the embedded 8x8 digits); segmentation masks are resized back (nearest) to
each image's own size. A missing file or a non-image gets one sentence (exit status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.train.errors import InputError
from core.train.inputs import each_readable, finish_inputs, input_files

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_paths(spec: Any) -> list[Path]:
    """Files named by ``input=`` (a file, a directory of images, or a list)."""
    return input_files(spec, IMAGE_SUFFIXES, "image")


_SIXTEEN_BIT_GREY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit greyscale (PIL modes ``I;16*``, or ``I`` as older Pillow opens 16-bit PNGs) scaled by its
    bit depth to 8 bits; converting it directly would clip every value above 255 to white."""
    arr = np.asarray(im, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8), mode="L")


def read_image(path: Path, channels: int) -> Image.Image:
    """Open any PIL mode and convert to ``L`` (1 channel) or ``RGB``; transparency is composited on black,
    16-bit greyscale is scaled by its bit depth."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _SIXTEEN_BIT_GREY:
                im = _to_8bit(im)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode in ("RGBA", "LA"):
                bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))
            return im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path} is not a readable image file.") from exc


def to_tensor(im: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """PIL image resized to ``size`` (H, W) -> ``(C, H, W)`` float in [0, 1]."""
    arr = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def model_input(im: Image.Image, datamodule, size: tuple[int, int]) -> torch.Tensor:
    """``(C, H, W)`` model input: the datamodule's own framing of a picture where it has one (the embedded
    digits: polarity, crop, aspect-preserving frame), else the picture resized to ``size``; normalised."""
    frame = getattr(datamodule, "frame_picture", None)
    return datamodule.normalize(frame(im) if frame else to_tensor(im, size))


def mask_input(im: Image.Image, datamodule, size: tuple[int, int]) -> torch.Tensor:
    """``(C, H, W)`` segmentation input: the picture resized to ``size`` and normalised (no framing, so the
    predicted mask maps back onto the picture pixel for pixel)."""
    return datamodule.normalize(to_tensor(im, size))


@torch.no_grad()
def predict_images(*, module, datamodule, request: dict, out_dir: str) -> list[dict]:
    """Print the top-k classes with probabilities for each image; returns them too."""
    model = module.model
    channels = model.patch_embed.proj.in_channels
    classes = list(getattr(datamodule, "classes", None) or range(model.num_classes))
    k = max(1, min(int(request.get("top_k") or 3), len(classes)))
    results: list[dict] = []
    def read(f: Path) -> torch.Tensor:
        try:
            return model_input(read_image(f, channels), datamodule, model.img_size)
        except InputError as exc:
            raise InputError(f"{f}: {exc}") if str(f) not in str(exc) else exc

    for path, x in each_readable(image_paths(request.get("input")), read, results):
        prob = model(x[None]).softmax(-1)[0]
        top = prob.topk(k)
        preds = [(str(classes[i]), float(p)) for p, i in zip(top.values, top.indices)]
        print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in preds))
        results.append({"file": str(path), "top": preds})
    finish_inputs(results)
    return results


@torch.no_grad()
def predict_masks(*, module, datamodule, request: dict, out_dir: str) -> list[dict]:
    """Segment each image: writes ``<name>_mask.png`` (palette PNG, pixel value = class index) and
    ``<name>_overlay.png`` (colour overlay) at the image's own size into ``out_dir`` (or ``request['out_dir']``)."""
    import torch.nn.functional as F

    from vision.plots import save_mask, save_overlay

    model = module.model
    channels = model.patch_embed.proj.in_channels
    classes = list(getattr(datamodule, "classes", None) or range(model.num_classes))
    dest = Path(request.get("out_dir") or out_dir)
    results: list[dict] = []
    for path, im in each_readable(image_paths(request.get("input")), lambda f: read_image(f, channels), results):
        x = mask_input(im, datamodule, model.img_size)[None]
        pred = model(x).argmax(1, keepdim=True).float()  # (1, 1, h, w)
        full = F.interpolate(pred, size=(im.height, im.width), mode="nearest")[0, 0].long()
        mask = save_mask(full, dest / f"{path.stem}_mask.png", num_classes=len(classes))
        image = to_tensor(im, (im.height, im.width))
        overlay = save_overlay(image, full, dest / f"{path.stem}_overlay.png", num_classes=len(classes))
        present = {str(classes[int(c)]): round(float((full == c).float().mean()), 4) for c in full.unique()}
        print(f"{path}: mask {mask}, overlay {overlay}; class fractions {present}")
        results.append({"file": str(path), "mask": str(mask), "overlay": str(overlay), "fractions": present})
    finish_inputs(results)
    return results
