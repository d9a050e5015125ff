"""Every nlp recipe composes and runs a ``fast_dev_run``; one short learning check per embedded task."""

from __future__ import annotations

import pytest
from conftest import compose_cfg, train_cfg
from test_files import write_ag_news, write_iwslt_raw, write_parallel, write_text_label

from core.train.errors import ConfigError
from core.train.run import build

TINY_CLS = ["model.dim=32", "model.depth=1", "model.num_heads=2", "data.corpus_size=2000", "data.max_number=99"]
TINY_MT = ["model.dim=32", "model.enc_depth=1", "model.dec_depth=1", "model.num_heads=2", "data.train_size=200",
           "data.val_size=20", "data.test_size=20", "data.max_number=9999", "module.val_decode_size=8"]
FAST = ["trainer.fast_dev_run=true"]
ADDITIVE_CROSS = "model.cross_attn={_target_:core.nn.attention.AdditiveAttention,_partial_:true}"


@pytest.mark.parametrize("recipe", ["numbers_cls", "numbers_bow"])
def test_classification_fast_dev_run(recipe, out_dir):
    rec = train_cfg([f"experiment=nlp/{recipe}", *FAST, *TINY_CLS[-2:]], out_dir)
    assert rec["task"] == "nlp/classification" and "test/acc" in rec and rec["params"] > 0


@pytest.mark.parametrize("cross", ["sdpa", "additive"])
def test_translation_fast_dev_run(cross, out_dir):
    over = [] if cross == "sdpa" else [ADDITIVE_CROSS]
    rec = train_cfg(["experiment=nlp/numbers_de", *FAST, *TINY_MT, *over], out_dir)
    for key in ("test/bleu", "test/chrf", "test/exact_match", "test/greedy_bleu", "test/greedy_chrf",
                "test/greedy_exact_match"):
        assert key in rec
    pngs = sorted((out_dir / "alignments").glob("*.png"))
    assert len(pngs) == 3 and all(p.stat().st_size > 1000 for p in pngs)


def test_cross_attention_option_builds_additive(out_dir):
    cfg = compose_cfg(["experiment=nlp/numbers_de", *TINY_MT, ADDITIVE_CROSS], out_dir)
    _, module = build(cfg)
    blk = module.model.decoder.blocks[0]
    assert type(blk.cross_attn).__name__ == "AdditiveAttention" and type(blk.attn).__name__ == "MultiHeadAttention"


def test_2d_pe_on_text_is_refused(out_dir):
    cfg = compose_cfg(["experiment=nlp/numbers_cls", "pe=sinusoidal_2d", *TINY_CLS], out_dir)
    with pytest.raises(ConfigError, match="2-D positions"):
        build(cfg)


def test_real_file_recipes_fast_dev_run(tmp_path, out_dir):
    write_text_label(tmp_path / "tl")
    rec = train_cfg(["experiment=nlp/text_cls", f"data.path={tmp_path / 'tl'}", "data.vocab_size=60", *FAST,
                     "model.dim=32", "model.depth=1"], out_dir / "tl")
    assert "test/acc" in rec and (out_dir / "tl" / "spm.model").is_file()
    write_ag_news(tmp_path / "data" / "ag_news")
    rec = train_cfg(["experiment=nlp/ag_news", f"paths.data_dir={tmp_path / 'data'}", "data.vocab_size=60", *FAST,
                     "model.dim=32", "model.depth=1"], out_dir / "ag")
    assert "test/acc" in rec


@pytest.mark.parametrize("layout", ["parallel", "iwslt14"])
def test_parallel_recipes_fast_dev_run(layout, tmp_path, out_dir):
    small = ["model.dim=32", "model.enc_depth=1", "model.dec_depth=1", "data.vocab_size=60", "module.beam_size=2",
             "module.num_alignment_plots=1", *FAST]
    if layout == "parallel":
        write_parallel(tmp_path / "p")
        over = ["experiment=nlp/parallel", f"data.path={tmp_path / 'p'}"]
    else:
        write_iwslt_raw(tmp_path / "data" / "iwslt14")
        over = ["experiment=nlp/iwslt14", f"paths.data_dir={tmp_path / 'data'}"]
    rec = train_cfg([*over, *small], out_dir)
    assert "test/bleu" in rec and (out_dir / "spm.model").is_file()


def test_classification_learns(out_dir):
    """Short learning check (well under a minute on an idle 2-core CPU): order-only task, chance 0.5."""
    rec = train_cfg(["experiment=nlp/numbers_cls", "data.corpus_size=6000", "data.max_number=99",
                     "data.langs=[en]", "model.dim=64", "model.depth=2", "trainer.max_epochs=3",
                     "data.batch_size=32", "module.optimizer.lr=2e-3"], out_dir)
    assert rec["test/acc"] > 0.8, rec


def test_translation_learns(out_dir):
    """Short learning check: English -> German number words up to 99 (20 held-out test numbers)."""
    rec = train_cfg(["experiment=nlp/numbers_de", "data.max_number=99", "data.train_size=60", "data.val_size=20",
                     "data.test_size=20", "model.dim=64", "model.enc_depth=2", "model.dec_depth=2",
                     "trainer.max_epochs=40", "data.batch_size=16", "module.optimizer.lr=2e-3",
                     "module.num_alignment_plots=0"], out_dir)
    assert rec["test/chrf"] > 60, rec


@pytest.mark.slow
def test_translation_compiles_with_varying_lengths(out_dir):
    """compile=true on padded encoder/decoder batches whose lengths change from batch to batch."""
    rec = train_cfg(["experiment=nlp/numbers_de", "compile=true", "trainer.max_epochs=1", "trainer.limit_train_batches=6",
                     "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", *TINY_MT], out_dir)
    assert 0.0 <= rec["test/chrf"] <= 100.0
