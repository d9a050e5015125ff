"""Speech recipes: fast_dev_run of each, a short learning check, WER against jiwer, the full bar (slow)."""

from __future__ import annotations

import json
import os

import jiwer
import pytest
import torch
from torchmetrics.text import CharErrorRate, WordErrorRate

from conftest import compose_cfg, train_cfg
from core.train.errors import ConfigError
from speech_fabricate import write_librispeech, write_manifests

TINY_DATA = ["data.num_utterances={train:24,val:8,test:8}", "data.batch_size=8"]
TINY_MODEL = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.subsample_channels=8"]


@pytest.mark.parametrize("variant", [[], ["pe=rope"], ["pe=alibi"], ["pe=learned"], ["pe=none"],
                                     ["attention=linear"], ["attention=additive"], ["model.conv_kernel=15"],
                                     ["module.beam_size=4"]])
def test_spoken_digits_fast_dev_run(variant, out_dir):
    rec = train_cfg(["experiment=speech/spoken_digits", "trainer.fast_dev_run=true", *TINY_DATA, *TINY_MODEL,
                     *variant], out_dir)
    assert rec["task"] == "speech/ctc"
    assert 0.0 <= rec["test/wer"] and 0.0 <= rec["test/cer"]


def test_2d_only_pe_and_linear_alibi_are_refused(out_dir):
    for bad, match in ((["pe=sinusoidal_2d"], "2-D"), (["attention=linear", "pe=alibi"], "alibi|ALiBi")):
        with pytest.raises(ConfigError, match=match):
            train_cfg(["experiment=speech/spoken_digits", "trainer.fast_dev_run=true", *TINY_DATA, *TINY_MODEL, *bad],
                      out_dir)


def test_librispeech_fast_dev_run(tmp_path, out_dir):
    write_librispeech(tmp_path / "data")
    rec = train_cfg(["experiment=speech/librispeech", f"data.root={tmp_path / 'data'}", "trainer.fast_dev_run=true",
                     "data.num_workers=0",
                     *TINY_MODEL], out_dir)
    assert rec["task"] == "speech/ctc" and 0.0 <= rec["test/wer"]


def test_manifest_fast_dev_run(tmp_path, out_dir):
    paths = write_manifests(tmp_path)
    rec = train_cfg(["experiment=speech/manifest", *(f"data.{k}={v}" for k, v in paths.items()),
                     "trainer.fast_dev_run=true", "data.num_workers=0", *TINY_MODEL], out_dir)
    assert 0.0 <= rec["test/cer"]


def test_missing_real_data_is_a_clear_error(tmp_path, out_dir):
    with pytest.raises(ConfigError, match="data.root"):
        train_cfg(["experiment=speech/librispeech", f"data.root={tmp_path}", "trainer.fast_dev_run=true"], out_dir)


def test_recipe_composes_with_time_frame_pe():
    cfg = compose_cfg(["experiment=speech/spoken_digits"])
    assert cfg.monitor.metric == "val/wer" and cfg.monitor.mode == "min"
    assert cfg.model.attn._target_ == "core.nn.attention.MultiHeadAttention"


def test_wer_cer_agree_with_jiwer():
    refs = ["one two three", "four five six seven", "eight nine", "zero"]
    hyps = ["one two tree", "four six seven", "eight nine nine", ""]
    wer, cer = WordErrorRate(), CharErrorRate()
    for r, h in zip(refs, hyps):  # accumulated over batches of one, as in validation
        wer([h], [r])
        cer([h], [r])
    assert float(wer.compute()) == pytest.approx(jiwer.wer(refs, hyps))
    assert float(cer.compute()) == pytest.approx(jiwer.cer(refs, hyps))


def test_spoken_digits_learns_quickly(out_dir):
    """In about a minute the CTC loss falls and the character error rate leaves chance (~1.0) behind.
    With the recipe's half from the Sphinx HMM after two eSpeak-only epochs, its 50 dB mel floor, no dropout and
    no frequency mask these 10 epochs reach val/loss 0.44, test CER 0.05 in 35 s (one mask: 0.68, 0.13 in 29 s and
    two: 0.79, 0.10 in 28 s, another session; dropout 0.1 too: 1.66, 0.59 in 45 s; without the floor too: 1.67,
    0.56); val is eSpeak's held-out voices."""
    rec = train_cfg(["experiment=speech/spoken_digits", "data.num_utterances={train:400,val:40,test:40}",
                     "data.batch_size=8", "model.dim=64", "model.depth=2", "model.subsample_channels=16",
                     "model.inter_ctc=0", "model.eval_warps=null", "trainer.max_epochs=10",
                     "module.optimizer.lr=5e-3"], out_dir)
    print(json.dumps({k: rec[k] for k in ("val/loss", "test/cer", "test/wer", "train_seconds")}))
    assert rec["val/loss"] < 2.0, rec  # a blank-only model sits at ~3
    assert rec["test/cer"] < 0.75, rec  # a blank-only or one-word model sits near 1


@pytest.mark.slow
def test_spoken_digits_bar(out_dir):
    """Issue 4 bar: test/wer <= 0.03 on held-out voices, training under 10 minutes on a 2-core CPU: run alone it
    trains on two threads, as the bar was measured (conftest gives each xdist worker one)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(2)
    rec = train_cfg(["experiment=speech/spoken_digits"], out_dir)
    print(json.dumps({k: rec[k] for k in ("test/wer", "test/wer_free", "test/cer", "train_seconds", "epochs")}))
    assert rec["test/wer"] <= 0.03, rec  # the recipe's decoding (digit lexicon)
    assert rec["test/wer_free"] <= 0.08, rec  # the free spelling, not the recipe's: 0.021 +- 0.004 (n=6)
    assert rec["train_seconds"] < 600, rec


@pytest.mark.slow
def test_compile_with_varying_lengths(out_dir):
    """compile=true on padded batches of changing length (dynamic shapes; ~1-2 min on this CPU), two layers so
    that training also reads the tapped middle one (InterCTC) through the compiled call."""
    rec = train_cfg(["experiment=speech/spoken_digits", "compile=true", "trainer.max_epochs=1", *TINY_DATA,
                     *TINY_MODEL, "model.depth=2", "model.conv_kernel=15"], out_dir)
    assert 0.0 <= rec["test/wer"] and 0.0 <= rec["test/cer"]
