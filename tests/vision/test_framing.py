"""A person's digit picture framed like the embedded 8x8 scans: polarity, crop, aspect, strokes, blocks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.train.errors import InputError
from vision.data.digits import DigitsDataModule
from vision.data.framing import frame_digit, ink_light_on_dark, stroke_width


def _bar(h: int, w: int, top: int, left: int, bar_h: int, bar_w: int, ink: float = 1.0, paper: float = 0.0):
    img = np.full((h, w), paper, dtype=np.float32)
    img[top: top + bar_h, left: left + bar_w] = ink
    return img


def test_polarity_is_detected_and_stretched():
    light_on_dark = _bar(40, 40, 5, 5, 20, 4, ink=0.8, paper=0.1)
    dark_on_light = _bar(40, 40, 5, 5, 20, 4, ink=0.1, paper=0.8)
    for img in (light_on_dark, dark_on_light):
        out = ink_light_on_dark(img)
        assert out[10, 6] == pytest.approx(1.0) and out[0, 0] == pytest.approx(0.0)
    assert not ink_light_on_dark(np.full((9, 9), 0.7, np.float32)).any()  # a blank page has no ink


def test_stroke_width_of_a_bar():
    assert stroke_width(_bar(60, 60, 5, 10, 40, 6) > 0.5) == pytest.approx(6.0 * 40 / (40 + 4), rel=0.05)
    assert stroke_width(np.zeros((5, 5), bool)) == 0.0


def test_inverted_off_centre_large_picture_is_framed_like_the_scans():
    """A 300x200 white page with a dark vertical bar in one corner: centred, full height, 8x8."""
    page = _bar(200, 300, 120, 240, 60, 8, ink=0.0, paper=1.0)
    out = frame_digit(page)
    assert out.shape == (8, 8) and 0.0 <= out.min() and out.max() <= 1.0
    rows, cols = np.where(out.max(1) > 0)[0], np.where(out.max(0) > 0)[0]
    assert rows[0] == 0 and rows[-1] == 7  # fills the height, as every scan does
    assert 2 <= cols[0] and cols[-1] <= 5  # a narrow bar stays narrow (aspect kept), centred
    # the same bar light on black, elsewhere on a small canvas: the same framing
    assert np.abs(frame_digit(_bar(40, 30, 2, 3, 30, 4)) - out).max() <= 0.25
    assert frame_digit(np.ones((30, 30), np.float32)) is None


def test_stroke_width_is_normalised():
    thin = np.zeros((128, 128), np.float32)
    thick = np.zeros((128, 128), np.float32)
    for img, pen in ((thin, 2), (thick, 22)):
        im = Image.fromarray((img * 255).astype(np.uint8))
        ImageDraw.Draw(im).ellipse((24, 8, 100, 120), outline=255, width=pen)
        img[:] = np.asarray(im, np.float32) / 255
    a, b = frame_digit(thin), frame_digit(thick)
    assert abs(a.sum() - b.sum()) < 0.25 * max(a.sum(), b.sum())  # similar ink mass after normalisation


def test_digits_datamodule_frames_pictures_for_predict(tmp_path):
    im = Image.fromarray((_bar(64, 64, 10, 40, 40, 6, ink=0.0, paper=1.0) * 255).astype(np.uint8))
    x = DigitsDataModule.frame_picture(im.convert("RGB"))
    assert tuple(x.shape) == (1, 8, 8) and 0.5 <= float(x.max()) <= 1.0 and float(x.min()) == 0.0
    with pytest.raises(InputError, match="no digit"):
        DigitsDataModule.frame_picture(Image.new("L", (20, 20), 255))


def test_person_augmentation_keeps_paper_and_ink_in_range():
    import torch

    from vision.data.digits import DigitAugment

    torch.manual_seed(0)
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 1:7, 3:5] = 1.0  # a bar, ink 1 on paper 0
    bg = -0.75
    aug = DigitAugment((x - 0.3) / 0.4, torch.arange(4), mode="person", background=bg)
    outs = torch.stack([aug[i % 4][0] for i in range(64)])
    assert outs.shape == (64, 1, 8, 8)
    assert float(outs.min()) >= bg - 1e-5 and float(outs.max()) <= (1 - 0.3) / 0.4 + 1e-5
    assert float(outs[:, :, 0, 0].max()) == pytest.approx(bg, abs=1e-4)  # corners stay paper
    ink = (outs - bg).sum(dim=(1, 2, 3))
    assert float(ink.std()) > 0.05 * float(ink.mean())  # stroke width and contrast vary the ink mass
