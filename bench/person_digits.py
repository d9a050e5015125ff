"""Digit pictures made the way a person makes them, and a digits checkpoint scored on them through mas-predict.

Nothing here comes from the training data: typed digits are rendered in the TrueType fonts that ship
with matplotlib (sans, serif, mono, Computer Modern, STIX; regular, bold, oblique) and drawn digits
are pen strokes along hand-made outlines with a shaky hand; each picture gets a random canvas size
(32 to 200 pixels, not always square), position and margin, and either polarity (dark ink on white
paper, or light ink on black).

    python bench/person_digits.py --ckpt outputs/runs/<digits run>/checkpoints/last.ckpt [--per-class 20]

prints accuracy per kind of picture (typed/drawn x dark/light ink), on typed digits in the font families
that training never renders (``typed-heldout``: STIX and Computer Modern, see ``vision/data/typed.py``), and
overall.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf",
         "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf"]

# outlines in a unit box (x right, y down), one or more strokes per digit, the way one writes them
STROKES = {
    0: [[(0.5, 0), (0.15, 0.2), (0.1, 0.5), (0.15, 0.8), (0.5, 1), (0.85, 0.8), (0.9, 0.5), (0.85, 0.2), (0.5, 0)]],
    1: [[(0.3, 0.2), (0.55, 0), (0.55, 1)]],
    2: [[(0.15, 0.25), (0.35, 0.02), (0.65, 0.02), (0.85, 0.25), (0.8, 0.45), (0.15, 1), (0.9, 1)]],
    3: [[(0.15, 0.1), (0.5, 0), (0.85, 0.15), (0.8, 0.38), (0.45, 0.5), (0.85, 0.62), (0.9, 0.85), (0.5, 1),
         (0.1, 0.9)]],
    4: [[(0.65, 1), (0.65, 0), (0.1, 0.7), (0.95, 0.7)]],
    5: [[(0.85, 0), (0.2, 0), (0.15, 0.45), (0.55, 0.4), (0.85, 0.6), (0.85, 0.85), (0.5, 1), (0.12, 0.9)]],
    6: [[(0.8, 0.05), (0.45, 0.05), (0.15, 0.4), (0.12, 0.75), (0.4, 1), (0.75, 0.95), (0.85, 0.7), (0.6, 0.5),
         (0.3, 0.55), (0.14, 0.7)]],
    7: [[(0.1, 0), (0.9, 0), (0.4, 1)]],
    8: [[(0.5, 0.48), (0.2, 0.3), (0.25, 0.05), (0.5, 0), (0.75, 0.05), (0.8, 0.3), (0.5, 0.48), (0.15, 0.7),
         (0.2, 0.95), (0.5, 1), (0.8, 0.95), (0.85, 0.7), (0.5, 0.48)]],
    9: [[(0.85, 0.3), (0.6, 0.48), (0.25, 0.42), (0.15, 0.2), (0.4, 0), (0.75, 0.05), (0.85, 0.3), (0.8, 0.7),
         (0.5, 1), (0.2, 0.9)]],
}


def _canvas(rng: np.random.RandomState) -> tuple[int, int]:
    side = int(rng.choice([32, 48, 64, 64, 100, 128, 200]))
    aspect = rng.uniform(0.7, 1.4) if rng.random_sample() < 0.4 else 1.0
    return side, max(24, int(side * aspect))  # (width, height)


def _placement(rng: np.random.RandomState, w: int, h: int) -> tuple[float, float, float]:
    """Height of the digit and its top-left corner: 40-85% of the canvas, anywhere it fits."""
    size = rng.uniform(0.4, 0.85) * min(w, h)
    return size, rng.uniform(0.02, 0.98 - 0.75 * size / w) * w, rng.uniform(0.02, 0.98 - size / h) * h


def typed_digit(d: int, font_file: str, rng: np.random.RandomState) -> Image.Image:
    import matplotlib

    w, h = _canvas(rng)
    size, x, y = _placement(rng, w, h)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font_file), int(size))
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    box = draw.textbbox((0, 0), str(d), font=font)
    x = min(x, w - (box[2] - box[0]) - 1)
    draw.text((x - box[0], y - box[1]), str(d), fill=255, font=font)
    return im


def drawn_digit(d: int, rng: np.random.RandomState) -> Image.Image:
    w, h = _canvas(rng)
    size, x, y = _placement(rng, w, h)
    width_ratio = rng.uniform(0.55, 0.85)
    pen = max(1, int(size * rng.uniform(0.05, 0.14)))
    slant = rng.uniform(-0.15, 0.15)
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    for stroke in STROKES[d]:
        pts = [(x + (px + slant * (1 - py)) * size * width_ratio + rng.normal(0, 0.025) * size,
                y + py * size + rng.normal(0, 0.025) * size) for px, py in stroke]
        draw.line(pts, fill=255, width=pen, joint="curve")
    return im


def make_pictures(folder: Path, per_class: int, seed: int = 0) -> list[tuple[Path, int, str, str]]:
    """Write the pictures; returns (file, digit, kind, font) with kind ``typed|drawn-dark|light`` ink
    and font ``""`` for drawn digits."""
    rng = np.random.RandomState(seed)
    out = []
    for d in range(10):
        for i in range(per_class):
            typed = i % 2 == 0
            face = FONTS[(i // 2) % len(FONTS)] if typed else ""
            im = typed_digit(d, face, rng) if typed else drawn_digit(d, rng)
            dark = rng.random_sample() < 0.5
            if dark:  # dark ink on white paper
                im = Image.eval(im, lambda v: 255 - v)
            kind = f"{'typed' if typed else 'drawn'}-{'dark' if dark else 'light'}"
            path = folder / f"{d}_{kind}_{i:03d}.png"
            (im.convert("RGB") if rng.random_sample() < 0.3 else im).save(path)
            out.append((path, d, kind, face))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="folder to keep the pictures in (default: a temporary one)")
    args = ap.parse_args(argv)
    import contextlib
    import io

    from core.train.run import load_for_predict
    from vision.data.typed import HELD_OUT_FAMILIES
    from vision.predict import predict_images

    with contextlib.ExitStack() as stack:  # the pictures are removed afterwards unless --keep names a folder
        folder = Path(args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="person_digits_")))
        os.makedirs(folder, exist_ok=True)
        pictures = make_pictures(folder, args.per_class, args.seed)
        _, dm, module = load_for_predict(args.ckpt)
        with contextlib.redirect_stdout(io.StringIO()):
            results = predict_images(module=module, datamodule=dm, request={"input": str(folder), "top_k": 1},
                                     out_dir=str(folder))
    got = {Path(r["file"]).name: r["top"][0][0] for r in results}
    right: dict[str, list[bool]] = defaultdict(list)
    for path, d, kind, face in pictures:
        ok = got.get(path.name) == str(d)
        right[kind].append(ok)
        right["all"].append(ok)
        if face.startswith(HELD_OUT_FAMILIES):
            right["typed-heldout"].append(ok)
    for kind, oks in sorted(right.items()):
        print(f"{kind:13s} accuracy {np.mean(oks):.3f}  (n={len(oks)})")


if __name__ == "__main__":
    main()
