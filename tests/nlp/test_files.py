"""Loaders on tiny fabricated files in the real on-disk layouts (CSV/JSONL/AG News, parallel, IWSLT14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.train.errors import InputError
from nlp.data.modules import TextClassificationDataModule, TranslationDataModule
from nlp.data.files import AG_NEWS_CLASSES, load_labeled, load_parallel

AG_ROWS = [
    ("3", "Wall St. Bears Claw Back", "Short-sellers, Wall Street's dwindling band, are seeing green again."),
    ("2", "Phelps wins gold", "Michael Phelps won the 200m butterfly, his \\fourth gold."),
    ("1", "Talks in Geneva", "Diplomats met on Tuesday, \"quietly\", to discuss the ceasefire."),
    ("4", "New chip unveiled", "The processor doubles speed at half the power."),
]


def write_ag_news(root: Path, copies: int = 5) -> None:
    import csv

    root.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "test.csv"):
        with (root / name).open("w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            for _ in range(copies):
                w.writerows(AG_ROWS)


def write_text_label(root: Path, n: int = 40) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rows = [(f"good movie number {i}, loved it" if i % 2 else f"bad film {i}, boring", "pos" if i % 2 else "neg")
            for i in range(n)]
    with (root / "train.csv").open("w") as f:
        f.write("id,text,label\n")
        for i, (t, y) in enumerate(rows):
            f.write(f'{i},"{t}",{y}\n')
    with (root / "test.jsonl").open("w") as f:
        for t, y in rows[:10]:
            f.write(json.dumps({"text": t, "label": y}) + "\n")


def write_parallel(root: Path, src: str = "src", tgt: str = "tgt", n: int = 30) -> None:
    from nlp.data.corpora import number_words

    root.mkdir(parents=True, exist_ok=True)
    for split, start in (("train", 0), ("valid", 1000), ("test", 2000)):
        nums = range(start, start + n)
        (root / f"{split}.{src}").write_text("\n".join(number_words(x, "en") for x in nums) + "\n")
        (root / f"{split}.{tgt}").write_text("\n".join(number_words(x, "de") for x in nums) + "\n")


def write_iwslt_raw(root: Path, n: int = 12) -> None:
    root.mkdir(parents=True, exist_ok=True)
    de = [f"Das ist Satz {i}." for i in range(n)]
    en = [f"This is sentence {i}." for i in range(n)]
    for lang, lines in (("de", de), ("en", en)):
        meta = ["<url>http://www.ted.com/talks/x</url>", "<keywords>talks</keywords>"]
        (root / f"train.tags.de-en.{lang}").write_text("\n".join(meta[:1] + lines + meta[1:]) + "\n")
        for name, part in (("IWSLT14.TED.dev2010", lines[:3]), ("IWSLT14.TED.tst2010", lines[3:6]),
                           ("IWSLT14.TED.tst2011", lines[6:8])):
            segs = "\n".join(f'<seg id="{i + 1}"> {s} </seg>' for i, s in enumerate(part))
            (root / f"{name}.de-en.{lang}.xml").write_text(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<srcset setid="x" srclang="{lang}">\n'
                f'<doc docid="1">\n<talkid>1</talkid>\n{segs}\n</doc>\n</srcset>\n</mteval>\n')


def test_load_labeled_formats(tmp_path):
    write_ag_news(tmp_path / "ag", copies=1)
    texts, labels = load_labeled(tmp_path / "ag" / "train.csv")  # auto-detected AG News layout
    assert labels == ["Business", "Sports", "World", "Sci/Tech"]
    assert texts[0].startswith("Wall St. Bears Claw Back Short-sellers") and "\\" not in texts[1]
    assert "\"quietly\"" in texts[2]
    write_text_label(tmp_path / "tl", n=6)
    texts, labels = load_labeled(tmp_path / "tl" / "train.csv")
    assert labels[:2] == ["neg", "pos"] and texts[1] == "good movie number 1, loved it"
    texts, labels = load_labeled(tmp_path / "tl" / "test.jsonl")
    assert len(texts) == 6 and labels[0] == "neg"


def test_load_labeled_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_labeled(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="text,label"):
        load_labeled(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"text": "x", "label": 1}\n{"txt": "y"}\n')
    with pytest.raises(InputError, match="line 2"):
        load_labeled(tmp_path / "bad.jsonl")


def test_classification_datamodule_on_files(tmp_path):
    write_ag_news(tmp_path / "ag")
    dm = TextClassificationDataModule(cache_dir=str(tmp_path / "cache"), corpus=None, path=str(tmp_path / "ag"),
                                      format="ag_news", tokenizer="sentencepiece", vocab_size=60,
                                      save_dir=str(tmp_path / "run"), max_len=16, batch_size=4)
    with pytest.warns(UserWarning, match="truncated"):
        dm.setup("fit")
    assert dm.classes == sorted(AG_NEWS_CLASSES) and (tmp_path / "run" / "spm.model").is_file()
    assert set(dm.items) == {"train", "val", "test"} and len(dm.items["test"]) == 20
    tokens, mask, y = next(iter(dm.train_dataloader()))
    assert tokens.shape[1] <= 16 and mask.dtype == tokens.new_zeros(1, dtype=bool).dtype and len(y) == 4
    # the state restores tokenizer and classes without any data
    again = TextClassificationDataModule(cache_dir="x", corpus=None, path="unused")
    again.load_state_dict(dm.state_dict())
    again.setup("predict")
    assert again.classes == dm.classes and again.encoder().encode(["Phelps"])[0].tolist() == \
        dm.encoder().encode(["Phelps"])[0].tolist()


def test_text_label_directory_labels_and_carved_val(tmp_path):
    write_text_label(tmp_path / "tl")
    dm = TextClassificationDataModule(cache_dir=str(tmp_path), corpus=None, path=str(tmp_path / "tl"),
                                      tokenizer="char", batch_size=8)
    dm.setup("fit")
    assert dm.classes == ["neg", "pos"] and len(dm.items["test"]) == 10 and len(dm.items["val"]) >= 1


def test_parallel_plain_layout(tmp_path):
    write_parallel(tmp_path / "p")
    src, tgt = load_parallel(tmp_path / "p", "val", "src", "tgt")
    assert src[0] == "one thousand" and tgt[0] == "eintausend"
    dm = TranslationDataModule(cache_dir=str(tmp_path), corpus=None, path=str(tmp_path / "p"), src_lang="src",
                               tgt_lang="tgt", tokenizer="char", batch_size=5)
    dm.setup("fit")
    s, sm, t, refs = next(iter(dm.val_dataloader()))
    assert refs[0] == "eintausend" and t[0, 0].item() == 2 and dm.tokenizer.decode(t[0].tolist()) == "eintausend"
    assert (sm == (s == 0)).all()


def test_parallel_mismatch_is_an_error(tmp_path):
    write_parallel(tmp_path / "p")
    (tmp_path / "p" / "train.tgt").write_text("eins\n")
    with pytest.raises(InputError, match="align line by line"):
        load_parallel(tmp_path / "p", "train", "src", "tgt")


def test_iwslt14_raw_layout(tmp_path):
    write_iwslt_raw(tmp_path / "iwslt")
    src, tgt = load_parallel(tmp_path / "iwslt", "train", "de", "en")
    assert len(src) == 12 and src[0] == "Das ist Satz 0." and tgt[0] == "This is sentence 0."
    assert load_parallel(tmp_path / "iwslt", "val", "de", "en")[1] == [f"This is sentence {i}." for i in range(3)]
    assert load_parallel(tmp_path / "iwslt", "test", "de", "en")[0] == [f"Das ist Satz {i}." for i in range(3, 8)]
    # fairseq's prepared layout uses plain suffixes
    write_parallel(tmp_path / "prep", src="de", tgt="en", n=5)
    assert len(load_parallel(tmp_path / "prep", "test", "de", "en")[0]) == 5
