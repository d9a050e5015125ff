"""Typed digits rendered for training: fonts kept apart from the person-picture bench, framing like the
scans (checked by a nearest-neighbour reader fitted on the scans alone), and the train split alone grows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_bench
from core.train.errors import InputError
from vision.data.digits import DigitsDataModule
from vision.data.typed import HELD_OUT_FAMILIES, TRAIN_FONTS, render_typed_digits


def test_training_fonts_are_not_the_bench_fonts():
    bench_fonts = load_bench("person_digits").FONTS
    assert not set(TRAIN_FONTS) & set(bench_fonts)
    assert not any(f.startswith(HELD_OUT_FAMILIES) for f in TRAIN_FONTS)
    held_out = [f for f in bench_fonts if f.startswith(HELD_OUT_FAMILIES)]
    assert len(held_out) >= 4  # the bench's typed-heldout line has fonts of both families to score
    assert {f[:2] for f in held_out} == {"ST", "cm"}


def test_renderings_are_framed_digits_the_scans_explain():
    """A 3-nearest-neighbour reader fitted on the 1,797 scans only reads the renderings far above chance
    (0.10): they are framed like the scans (full height, centred, scan stroke width)."""
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier

    rendered = render_typed_digits(2, seed=3)
    x, y = rendered["x"], rendered["y"]
    assert x.shape == (10 * len(TRAIN_FONTS) * 2, 1, 8, 8) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [len(TRAIN_FONTS) * 2] * 10
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    img = x[:, 0]
    fills_height = (img[:, 0].amax(-1) > 0) & (img[:, 7].amax(-1) > 0)
    fills_width = (img[:, :, 0].amax(-1) > 0) & (img[:, :, 7].amax(-1) > 0)  # wide content fits the width
    assert bool((fills_height | fills_width).all()) and fills_height.float().mean() > 0.9
    scans = load_digits()
    knn = KNeighborsClassifier(3).fit(scans.images.reshape(len(scans.images), -1) / 16.0, scans.target)
    assert (knn.predict(x.reshape(len(y), -1).numpy()) == y.numpy()).mean() > 0.45
    again = render_typed_digits(2, seed=3)
    torch.testing.assert_close(again["x"], x)  # the cache can be rebuilt identically


def test_typed_renderings_join_the_train_split_only(tmp_path):
    plain = DigitsDataModule(cache_dir=str(tmp_path), split_seed=0)
    typed = DigitsDataModule(cache_dir=str(tmp_path), split_seed=0, typed=1)
    for dm in (plain, typed):
        dm.prepare_data()
        dm.setup("fit")
    assert len(typed.splits["train"][1]) == len(plain.splits["train"][1]) + 10 * len(TRAIN_FONTS)
    for split in ("val", "test"):
        for a, b in zip(plain.splits[split], typed.splits[split]):
            assert torch.equal(a, b)
    added = typed.splits["train"][0][len(plain.splits["train"][1]):]
    np.testing.assert_allclose(float(added.min()), -plain.mean / plain.std, atol=1e-6)  # paper: the scans' 0
    assert (tmp_path / "vision" / "typed_digits-1.pt").is_file()


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_bad_typed_count_is_one_sentence(bad, tmp_path):
    with pytest.raises(InputError, match="data.typed"):
        DigitsDataModule(cache_dir=str(tmp_path), typed=bad)
