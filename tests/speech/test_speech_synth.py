"""The embedded spoken-digits builder: eSpeak NG through the wheel, determinism, held-out voices, cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from speech.data.digits import SpokenDigitsDataModule
from speech.data.espeak import Utterance, available_variants, run_batch_in_subprocess
from speech.data.digits import DIGIT_WORDS, SPLITS, DigitsSpec, build_spoken_digits, make_requests

TINY = {"train": 6, "val": 2, "test": 3}


def test_engine_speaks_and_validates_voices(tmp_path):
    # Fresh processes, as the builder runs it: the library is a process-wide singleton.
    sr, (wave,) = run_batch_in_subprocess([Utterance("one two three", "en-us+f2", seed=1)], str(tmp_path / "a.npz"))
    assert sr == 22050
    assert wave.dtype == np.int16 and 0.6 < len(wave) / sr < 3.0 and np.abs(wave).max() > 1000
    assert {"m1", "f5", "klatt"} <= set(available_variants())
    with pytest.raises(RuntimeError, match="unknown eSpeak voice variant 'nosuchvoice'"):
        run_batch_in_subprocess([Utterance("one", "en+nosuchvoice")], str(tmp_path / "b.npz"))
    with pytest.raises(RuntimeError, match="unknown eSpeak voice 'xx-nolang'"):
        run_batch_in_subprocess([Utterance("one", "xx-nolang")], str(tmp_path / "c.npz"))


def test_engine_refuses_a_second_data_folder_in_one_process(tmp_path):
    code = ("import sys; from speech.data.espeak import Espeak, wheel_data_path; Espeak(); "
            "Espeak(wheel_data_path()); Espeak(sys.argv[1])")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "already runs on" in proc.stderr and "fresh process" in proc.stderr


def test_builder_is_deterministic_and_independent_of_workers():
    spec = DigitsSpec(num_utterances=TINY, batch=4)
    a = build_spoken_digits(spec, num_workers=1, progress=False)
    b = build_spoken_digits(spec, num_workers=2, progress=False)
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["offsets"], b["offsets"])
    assert a["text"] == b["text"] and a["voice"] == b["voice"]
    assert len(a["text"]) == 11 and a["audio"].dtype == torch.int16 and a["sample_rate"] == 16000
    other = build_spoken_digits(DigitsSpec(num_utterances=TINY, batch=4, seed=1), progress=False)
    assert other["text"] != a["text"]


def test_requests_hold_out_voices_and_say_digits():
    spec = DigitsSpec(num_utterances={"train": 60, "val": 10, "test": 10})
    reqs = make_requests(spec)
    variants = {s: {u.voice.split("+")[1] for split, _, u in reqs if split == s} for s in SPLITS}
    assert not (variants["train"] & variants["test"]) and not (variants["train"] & variants["val"])
    assert variants["test"] == set(spec.variants["test"])
    for _, text, u in reqs:
        words = text.split()
        assert 3 <= len(words) <= 7 and set(words) <= set(DIGIT_WORDS) and u.text == text
    with pytest.raises(ValueError, match="disjoint"):
        DigitsSpec(variants={"train": ["m1"], "val": ["m1"], "test": ["f1"]})


def test_datamodule_caches_and_splits(tmp_path):
    dm = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=TINY, batch_size=4)
    dm.prepare_data()
    assert dm.path.is_file() and dm.path.parent == tmp_path / "speech"
    mtime = dm.path.stat().st_mtime_ns
    dm.setup("fit")
    assert {s: len(ds) for s, ds in dm.datasets.items()} == TINY
    wave, wave_lens, targets, target_lens, texts = next(iter(dm.val_dataloader()))
    assert wave.dtype == torch.float32 and wave.abs().max() <= 1.0 and len(texts) == 2
    again = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=TINY)
    again.setup("test")  # loads the cache, does not rebuild
    assert again.path == dm.path and dm.path.stat().st_mtime_ns == mtime
    bigger = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances={**TINY, "train": 7})
    assert bigger.path != dm.path  # the spec's hash names the file
