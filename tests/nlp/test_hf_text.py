"""nlp/hf_text_cls and nlp/hf_translation: Hugging Face text datasets on disk through the recipe configs."""

from __future__ import annotations

import pytest
from conftest import compose_cfg, train_cfg
from hydra.utils import instantiate

pytest.importorskip("datasets")
from datasets import ClassLabel  # noqa: E402
from hf_fabricate import dataset, save  # noqa: E402

NAMES = ["negative", "positive", "mixed"]  # ClassLabel order, kept as the class order
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
GERMAN = ["eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht"]
FAST = ["trainer.fast_dev_run=true", "data.tokenizer=char", "threads=1"]


def _reviews(n: int, start: int = 0):
    texts = [f"review {start + i} was {WORDS[(start + i) % 8]}" for i in range(n)]
    return dataset({"content": texts, "stars": [(start + i) % 3 for i in range(n)]},
                   {"stars": ClassLabel(names=NAMES)})


def _pairs(n: int, start: int = 0):
    return dataset({"id": list(range(n)), "translation": [{"en": f"{WORDS[(start + i) % 8]} {WORDS[i % 8]}",
                                                           "de": f"{GERMAN[(start + i) % 8]} {GERMAN[i % 8]}"}
                                                          for i in range(n)]})


@pytest.mark.parametrize("how", ["disk", "hub"])
def test_text_classification_through_the_recipe(how, tmp_path, out_dir):
    root = save({"train": _reviews(30), "validation": _reviews(6, 100), "test": _reviews(9, 200)}, tmp_path / "r", how)
    over = ["experiment=nlp/hf_text_cls", f"data.path={root}", "data.columns.text=content", "data.columns.label=stars",
            f"data.cache_dir={tmp_path / 'cache'}", "data.tokenizer=char"]
    dm = instantiate(compose_cfg(over, out_dir).data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.classes == NAMES and {k: len(dm.items[k]) for k in ("train", "val", "test")} == \
        {"train": 30, "val": 6, "test": 9}
    ids, y = dm.items["test"][4]
    assert dm.tokenizer.decode(ids.tolist()) == "review 204 was five" and NAMES[y] == NAMES[204 % 3]


def test_text_classification_trains(tmp_path, out_dir):
    root = save({"train": _reviews(24), "test": _reviews(6, 50)}, tmp_path / "r")
    rec = train_cfg(["experiment=nlp/hf_text_cls", f"data.path={root}", "data.columns.text=content",
                     "data.columns.label=stars", "data.val_fraction=0.25", "model.dim=32", "model.depth=1", *FAST],
                    out_dir)
    assert rec["task"] == "nlp/classification" and 0 <= rec["test/acc"] <= 1


def test_translation_from_a_dict_column_trains(tmp_path, out_dir):
    root = save({"train": _pairs(40), "validation": _pairs(5, 3), "test": _pairs(6, 5)}, tmp_path / "t", "parquet")
    over = ["experiment=nlp/hf_translation", f"data.path={root}", "data.columns.src=translation.en",
            "data.columns.tgt=translation.de", f"data.cache_dir={tmp_path / 'cache'}"]
    dm = instantiate(compose_cfg([*over, "data.tokenizer=char"], out_dir).data)
    dm.prepare_data()
    dm.setup("fit")
    assert {k: len(dm.items[k]) for k in ("train", "val", "test")} == {"train": 40, "val": 5, "test": 6}
    src, tgt, ref = dm.items["test"][2]
    assert dm.tokenizer.decode(src.tolist()) == "eight three" and ref == "acht drei"
    rec = train_cfg([*over, "model.dim=32", "model.enc_depth=1", "model.dec_depth=1", "module.beam_size=2",
                     "module.num_alignment_plots=0", *FAST], out_dir)
    assert rec["task"] == "nlp/translation" and "test/bleu" in rec
