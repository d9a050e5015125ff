"""Test splits at other input sizes (``data.size_ratio``) in every domain, and the shared length rule."""

from __future__ import annotations

import pytest
import torch

from core.train.data import lengths_at_ratio
from core.train.errors import InputError


@pytest.mark.parametrize(("ratio", "expected"), [(1.5, (17, 24)), (2, (25, 32)), (3, (41, 48)), (4, (57, 64))])
def test_lengths_at_ratio_is_the_band_below_ratio_times_the_longest(ratio, expected):
    assert lengths_at_ratio((4, 16), ratio) == expected
    assert lengths_at_ratio((3, 7), 1.5) == (8, 10) and lengths_at_ratio((3, 7), 4) == (25, 28)


def test_digit_order_texts_labels_kinds_and_lengths(tmp_path):
    from nlp.data.digit_order import DigitOrderDataModule, order_texts

    data = order_texts(400, (4, 16), seed=3)
    for text, label, kind in zip(data["text"], data["label"], data["kind"]):
        digits = [int(c) for c in text]
        in_order = all(a <= b for a, b in zip(digits, digits[1:]))
        assert in_order == bool(label) == (kind == "sorted") and 4 <= len(text) <= 16
        if kind == "swap":  # the same digits as the sorted string: one neighbouring pair exchanged
            s = sorted(digits)
            diff = [i for i in range(len(s)) if s[i] != digits[i]]
            assert len(diff) == 2 and diff[1] == diff[0] + 1
        if kind == "changed":  # exactly one fault
            assert sum(a > b for a, b in zip(digits, digits[1:])) == 1
    assert data["kind"].count("sorted") == 200 and data["kind"].count("swap") == 100

    dm = DigitOrderDataModule(cache_dir=str(tmp_path), size_ratio=4, sizes={"train": 200, "val": 20, "test": 60})
    dm.setup("fit")
    assert dm.model_kwargs()["max_len"] == 8  # learned tables cover the training lengths only
    test_lengths = [len(t) for t, _ in dm.items["test"]]
    assert min(test_lengths) == 29 and max(test_lengths) == 32  # (3.5 x 8, 4 x 8], never truncated
    assert max(len(t) for t, _ in dm.items["train"]) <= 8
    assert dm.test_subsets == ["sorted", "swap", "changed"] and len(dm.items["test_sorted"]) == 30
    base = DigitOrderDataModule(cache_dir=str(tmp_path), sizes={"train": 200, "val": 20, "test": 60})
    base.setup("fit")
    assert max(len(t) for t, _ in base.items["test"]) <= 8
    with pytest.raises(InputError, match="train_lengths"):
        DigitOrderDataModule(cache_dir=str(tmp_path), train_lengths=[8, 4])


def test_canvases_at_a_larger_size_hold_more_digits_at_the_same_scale(tmp_path):
    from vision.data.canvases import DigitCanvasDataModule

    kw = dict(cache_dir=str(tmp_path), num_train=8, num_val=4, num_test=24)
    base, big = DigitCanvasDataModule(**kw), DigitCanvasDataModule(**kw, size_ratio=2)
    base.setup("fit")
    big.setup("fit")
    # a quarter as many canvases of four times the area: about as many pixels and digits as the test split
    assert big.splits["test"][0].shape == (6, 1, 64, 64) and big.splits["test"][1].shape == (6, 64, 64)
    assert torch.equal(big.splits["train"][0], base.splits["train"][0])  # training data untouched
    per_canvas = [len(set(y.unique().tolist()) - {0}) for y in big.splits["test"][1]]
    assert max(per_canvas) > 4  # more digits than any 32x32 canvas holds (up to 16 here)
    ink = (big.splits["test"][1] > 0).float().sum() / 6
    assert ink > 2 * (base.splits["test"][1] > 0).float().sum() / 24  # same digit scale: more ink per canvas
    with pytest.raises(InputError, match="whole number"):
        DigitCanvasDataModule(**kw, size_ratio=1.01)


def test_digits_at_a_higher_resolution_are_the_same_test_images(tmp_path):
    from vision.data.digits import DigitsDataModule

    base, big = DigitsDataModule(str(tmp_path)), DigitsDataModule(str(tmp_path), size_ratio=1.5)
    base.setup("fit")
    big.setup("fit")
    x, y = big.splits["test"]
    assert x.shape[-2:] == (12, 12) and torch.equal(y, base.splits["test"][1])
    down = torch.nn.functional.interpolate(x, size=(8, 8), mode="area")
    assert torch.corrcoef(torch.stack([down.flatten(), base.splits["test"][0].flatten()]))[0, 1] > 0.9
    with pytest.raises(InputError, match="whole number"):
        DigitsDataModule(str(tmp_path), size_ratio=1.1)


def test_spoken_digits_at_twice_the_length_keep_the_test_voices(tmp_path):
    from speech.data.digits import SpokenDigitsDataModule

    sizes = {"train": 4, "val": 2, "test": 3}
    base = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=sizes, batch_size=4)
    long = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=sizes, batch_size=4, size_ratio=2)
    base.setup("fit")
    long.setup("fit")
    b, l = base.datasets["test"], long.datasets["test"]
    words = [len(l.texts[int(j)].split()) for j in l.index]
    assert len(l) == 2 and all(11 <= n <= 14 for n in words)  # ceil(3 / 2) utterances of twice the length
    assert long.test_path.is_file() and long.path == base.path
    variant = lambda data, ds: [data["voice"][int(j)].split("+")[1] for j in ds.index]  # noqa: E731
    held_out = set(base.spec.variants["test"])  # the same held-out voice variants, in the same rotation
    assert variant(long._test_data(), l) == variant(base._data(), b)[:len(l)] and set(variant(base._data(), b)) <= held_out
    assert sum(l.lengths) / len(l) > 1.5 * sum(b.lengths) / len(b)
