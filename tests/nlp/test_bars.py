"""Full-budget quality bars of the embedded nlp recipes (``pytest -m slow``; run with OMP_NUM_THREADS=1
on a shared 2-core CPU, see the nlp report)."""

from __future__ import annotations

import pytest
from conftest import train_cfg

pytestmark = pytest.mark.slow


def test_numbers_cls_bar_and_gap_to_bag_of_tokens(tmp_path):
    cls = train_cfg(["experiment=nlp/numbers_cls"], tmp_path / "cls")
    bow = train_cfg(["experiment=nlp/numbers_bow"], tmp_path / "bow")
    assert cls["test/acc"] >= 0.97, cls
    assert cls["train_seconds"] < 180, cls
    assert cls["test/acc"] - bow["test/acc"] >= 0.10, (cls["test/acc"], bow["test/acc"])


def test_numbers_de_bar_beam_not_worse_than_greedy(tmp_path):
    rec = train_cfg(["experiment=nlp/numbers_de"], tmp_path / "de")
    assert rec["test/exact_match"] >= 0.95, rec
    assert rec["test/chrf"] >= 98, rec
    assert rec["train_seconds"] < 600, rec
    assert rec["test/exact_match"] >= rec["test/greedy_exact_match"] and rec["test/chrf"] >= rec["test/greedy_chrf"]
    assert len(list((tmp_path / "de" / "alignments").glob("*.png"))) == 3
