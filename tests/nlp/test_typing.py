"""Text typed as people type it: hard pairs in the corpus, normalisation, typed variants, reports per kind."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import train_cfg

from core.train.errors import InputError
from core.train.tokenizers import normalize
from nlp.data.corpora import compare_corpus
from nlp.data.modules import TextClassificationDataModule
from nlp.data.typing import typed

STEPS = ["lower", "no_commas", "hyphen_space", "drop_and", "spaces"]
UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}


def parse_english(phrase: str) -> int:
    """English number words below a million, read independently of num2words (any case, "and" or not)."""
    total, part = 0, 0
    for w in phrase.lower().replace("-", " ").replace(",", " ").split():
        if w == "and":
            continue
        if w in UNITS:
            part += UNITS.index(w)
        elif w in TENS:
            part += TENS[w]
        elif w == "hundred":
            part *= 100
        elif w == "thousand":
            total, part = total + part * 1000, 0
        else:
            raise ValueError(f"not an English number word: {w!r}")
    return total + part


def test_pair_kinds_are_what_they_say():
    data = compare_corpus(1500, langs=("en",), max_number=999, seed=1)
    assert set(data["kind"]) == {"easy", "one_digit", "close"}
    straddles = 0
    for text, label, kind in zip(data["text"], data["label"], data["kind"]):
        a, b = (parse_english(p) for p in text.split(" | "))
        assert label == (0 if a > b else 1) and a != b
        if kind == "close":
            assert abs(a - b) <= 30, text
            straddles += a // 10 != b // 10
        if kind == "one_digit":
            sa, sb = str(a), str(b)
            assert len(sa) == len(sb) and sum(x != y for x, y in zip(sa, sb)) == 1, text
    assert straddles > 0.4 * data["kind"].count("close")  # across tens and hundreds, not only within
    with pytest.raises(ValueError, match="pair_kinds"):
        compare_corpus(10, pair_kinds={"tricky": 1.0})


def test_normalisation_makes_typing_variants_one_phrase():
    canon = normalize("one hundred and twenty-seven | nine", STEPS)
    for typed_text in ("ONE HUNDRED TWENTY SEVEN | NINE", "One Hundred And Twenty-Seven | Nine",
                       "one hundred twenty-seven |  nine ", "One hundred, and twenty seven | nine"):
        assert normalize(typed_text, STEPS) == canon == "one hundred twenty seven | nine"
    assert normalize("Thousand, Two-Hundred and Band", STEPS) == "thousand two hundred band"  # whole words only


def test_typed_variants_rewrite_each_side():
    rng = np.random.RandomState(0)
    text = "one hundred and twenty-seven | forty-one"
    assert typed(text, "capitals", rng, " | ") == "ONE HUNDRED AND TWENTY-SEVEN | FORTY-ONE"
    assert typed(text, "no_and", rng, " | ") == "one hundred twenty-seven | forty-one"
    assert typed(text, "spaced_hyphens", rng, " | ") == "one hundred and twenty seven | forty one"
    assert typed(text, "title_case", rng, " | ") == "One Hundred And Twenty-Seven | Forty-One"
    mixed = {typed(text, "mixed", rng, " | ") for _ in range(40)}
    assert len(mixed) > 5 and all(parse_english(s.split(" | ")[0]) == 127 for s in mixed)


def test_capitals_are_read_not_unknown(tmp_path):
    dm = TextClassificationDataModule(cache_dir=str(tmp_path), corpus_size=600, langs=["en"], max_number=999,
                                      normalize=STEPS)
    dm.setup("fit")
    enc = dm.encoder()
    a, b = enc.encode(["SIX HUNDRED FIVE | Forty One", "six hundred and five | forty-one"])
    assert a.tolist() == b.tolist() and 1 not in a.tolist()  # 1 = <unk>
    again = TextClassificationDataModule(cache_dir=str(tmp_path))  # predict: state from the checkpoint
    again.load_state_dict(dm.state_dict())
    assert again.normalize == STEPS and again.encoder().encode(["SIX HUNDRED FIVE | Forty One"])[0].tolist() == \
        a.tolist()
    with pytest.raises(InputError, match="normalize"):
        TextClassificationDataModule(cache_dir=str(tmp_path), normalize=["lowercase"])
    with pytest.raises(InputError, match="test_variants"):
        TextClassificationDataModule(cache_dir=str(tmp_path), test_variants=["shouting"])


def test_metrics_report_every_pair_kind_and_variant(out_dir):
    rec = train_cfg(["experiment=nlp/numbers_cls", "trainer.fast_dev_run=true", "data.corpus_size=2000",
                     "model.dim=32", "model.depth=1", "model.num_heads=2"], out_dir)
    for name in ("easy", "one_digit", "close_pairs", "capitals", "title_case", "no_and", "spaced_hyphens", "mixed"):
        assert 0.0 <= rec[f"test/acc_{name}"] <= 1.0, name
    assert "test/acc" in rec and not any("dataloader_idx" in k for k in rec)


def test_translation_reports_typed_sources(out_dir):
    rec = train_cfg(["experiment=nlp/numbers_de", "trainer.fast_dev_run=true", "model.dim=32", "model.enc_depth=1",
                     "model.dec_depth=1", "model.num_heads=2", "data.train_size=200", "data.val_size=20",
                     "data.test_size=20", "data.max_number=9999", "module.val_decode_size=8",
                     "module.num_alignment_plots=0"], out_dir)
    for name in ("capitals", "no_and", "spaced_hyphens", "mixed"):
        assert f"test/exact_match_{name}" in rec and f"test/chrf_{name}" in rec
    assert "test/exact_match" in rec and not any("dataloader_idx" in k for k in rec)
