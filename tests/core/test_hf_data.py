"""core.train.hf_source: Hugging Face datasets on disk (save_to_disk folders, parquet), splits, columns, labels,
and the one-sentence errors (missing path, column, split, extra)."""

from __future__ import annotations

import sys

import pytest
from conftest import run_cli

from core.train.errors import ConfigError, InputError
from core.train.hf_source import class_names, label_indices, label_names, media_source, open_splits

SPLITS = {"train": "train", "val": "validation", "test": "test"}


@pytest.fixture
def hf():
    return pytest.importorskip("datasets")


def _texts(n: int, start: int = 0):
    from hf_fabricate import dataset

    return dataset({"sentence": [f"text {start + i}" for i in range(n)], "label": [i % 3 for i in range(n)]})


@pytest.mark.parametrize("how", ["disk", "parquet", "hub"])
def test_splits_by_name_in_every_layout(hf, how, tmp_path):
    from hf_fabricate import save

    root = save({"train": _texts(12), "validation": _texts(4, 100), "test": _texts(5, 200)}, tmp_path / how, how)
    s = open_splits(root, splits=SPLITS, columns={"text": "sentence", "label": "label"}, required=("text",),
                    cache_dir=str(tmp_path / "cache"))
    assert {k: len(v) for k, v in s.items()} == {"train": 12, "val": 4, "test": 5}
    assert s["val"].record(1) == {"text": "text 101", "label": 1}
    assert s["test"].values("text")[:2] == ["text 200", "text 201"]


def test_single_dataset_folder_and_parquet_file_are_the_training_split(hf, tmp_path):
    _texts(20).save_to_disk(str(tmp_path / "one"))
    _texts(20).to_parquet(str(tmp_path / "one.parquet"))
    for path in (tmp_path / "one", tmp_path / "one.parquet"):
        s = open_splits(path, splits=SPLITS, columns={"text": "sentence"}, required=("text",), val_fraction=0.25,
                        cache_dir=str(tmp_path / "cache"))
        assert (len(s["train"]), len(s["val"])) == (15, 5) and s["test"] is s["val"]
        rows = sorted(s["train"].values("text") + s["val"].values("text"), key=lambda t: int(t.split()[1]))
        assert rows == [f"text {i}" for i in range(20)]  # a partition of train: nothing lost, nothing twice


def test_missing_val_is_carved_with_the_split_seed(hf, tmp_path):
    from hf_fabricate import save

    root = save({"train": _texts(40), "test": _texts(6, 100)}, tmp_path / "d")
    cols = {"text": "sentence"}

    def val(seed):
        s = open_splits(root, splits=SPLITS, columns=cols, required=("text",), val_fraction=0.1, split_seed=seed)
        assert (len(s["train"]), len(s["val"]), len(s["test"])) == (36, 4, 6)
        return s["val"].values("text")

    assert val(0) == val(0) and val(0) != val(1)
    none = open_splits(root, splits={"train": "train", "val": None, "test": "test"}, columns=cols, required=("text",))
    assert len(none["val"]) == 4  # val: null carves too
    with pytest.raises(ConfigError, match="val_fraction=0"):
        open_splits(root, splits=SPLITS, columns=cols, required=("text",), val_fraction=0.0)


def test_missing_column_names_it_and_the_available_ones(hf, tmp_path):
    from hf_fabricate import save

    root = save({"train": _texts(4)}, tmp_path / "d")
    with pytest.raises(InputError) as err:
        open_splits(root, splits=SPLITS, columns={"text": "text", "label": "label"}, required=("text", "label"))
    assert str(err.value) == ("the train split of data.path=" + str(root) + " has no column 'text' "
                              "(data.columns.text); its columns are: sentence, label.")


def test_missing_split_path_and_layout_are_one_sentence(hf, tmp_path):
    from hf_fabricate import save

    root = save({"training": _texts(4)}, tmp_path / "d")
    with pytest.raises(InputError, match=r"has no split 'train' \(data.splits.train\); it has: training\.$"):
        open_splits(root, splits=SPLITS, columns={"text": "sentence"}, required=("text",))
    with pytest.raises(InputError, match=r"does not exist \(give a folder written by save_to_disk, or parquet"):
        open_splits(tmp_path / "nowhere", splits=SPLITS, columns={"text": "sentence"}, required=("text",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds neither a saved dataset"):
        open_splits(tmp_path / "empty", splits=SPLITS, columns={"text": "sentence"}, required=("text",))
    with pytest.raises(ConfigError, match="data.splits takes the keys train, val, test, not dev"):
        open_splits(root, splits={"train": "train", "dev": "x"}, columns={"text": "sentence"}, required=("text",))


def test_missing_extra_is_one_sentence(monkeypatch, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now raises ImportError
    with pytest.raises(ConfigError, match=r"install the 'hf' extra: pip install -e '\.\[hf\]'\.$"):
        open_splits(tmp_path / "d", splits=SPLITS, columns={"text": "t"}, required=("text",))


def test_labels_classlabel_strings_and_ints(hf, tmp_path):
    from datasets import ClassLabel

    from hf_fabricate import dataset, save

    feats = {"label": ClassLabel(names=["zebra", "ant"])}  # not alphabetical: a ClassLabel's order is kept
    root = save({"train": dataset({"label": [1, 0, 1]}, feats), "test": dataset({"label": [0, -1]}, feats),
                 "validation": dataset({"label": [0]}, feats)}, tmp_path / "cl")
    s = open_splits(root, splits=SPLITS, columns={"label": "label"}, required=("label",))
    assert class_names(s["train"]) == ["zebra", "ant"] and label_names(s["train"]) == ["ant", "zebra", "ant"]
    assert label_indices(s["val"], ["zebra", "ant"]) == [0]
    with pytest.raises(InputError, match=r"the test split's column 'label' \(data.columns.label\) has unlabelled"):
        label_names(s["test"])
    root = save({"train": dataset({"y": [10, 2, 9, 2]}), "validation": dataset({"y": [3]})}, tmp_path / "ints")
    s = open_splits(root, splits=SPLITS, columns={"label": "y"}, required=("label",))
    assert class_names(s["train"]) == ["2", "9", "10"]  # numbers sort as numbers
    with pytest.raises(InputError, match=r"has labels \['3'\] not seen in training"):
        label_indices(s["val"], class_names(s["train"]))
    root = save({"train": dataset({"y": ["pos", "neg", "pos"]}), "validation": dataset({"y": ["neg"]})},
                tmp_path / "str")
    s = open_splits(root, splits=SPLITS, columns={"label": "y"}, required=("label",))
    assert class_names(s["train"]) == ["neg", "pos"] and label_indices(s["train"], ["neg", "pos"]) == [1, 0, 1]


def test_dotted_columns_read_a_dict_column_and_media_stay_encoded(hf, tmp_path):
    from datasets import Image

    from hf_fabricate import dataset, png_bytes, save
    import numpy as np

    png = png_bytes(np.zeros((2, 2, 3), np.uint8))
    ds = dataset({"translation": [{"de": "eins", "en": "one"}, {"de": "zwei", "en": "two"}],
                  "img": [{"bytes": png, "path": None}] * 2}, {"img": Image()})  # a decoding Image feature
    root = save({"train": ds, "validation": ds}, tmp_path / "t")
    s = open_splits(root, splits=SPLITS, columns={"src": "translation.de", "tgt": "translation.en", "image": "img"},
                    required=("src", "tgt"))
    assert s["train"].values("src") == ["eins", "zwei"] and s["val"].record(1)["tgt"] == "two"
    assert media_source(s["train"].record(0)["image"], s["train"].root) == png  # bytes, not a PIL image
    assert media_source({"bytes": None, "path": "a.png"}, tmp_path) == str(tmp_path / "a.png")


def test_cli_missing_path_exits_2_with_one_sentence(tmp_path):
    proc = run_cli("mas-train", "experiment=nlp/hf_text_cls", f"data.path={tmp_path}/nowhere",
                   f"hydra.run.dir={tmp_path}/r", "logger=none", cwd=tmp_path, timeout=300)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[-1] == (f"error: data.path={tmp_path}/nowhere does not exist (give a folder written by "
                         "save_to_disk, or parquet files)."), lines[-3:]
