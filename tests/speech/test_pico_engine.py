"""SVOX Pico as a second engine of the spoken digits: training-only, reproducible, and the eSpeak part untouched.

Tests that synthesise need ``pip install ttspico`` (the ``.[pico]`` extra compiles C) and skip without it;
the request plan and the missing-package message are checked everywhere.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from core.train.errors import InputError
from speech.data.digits import DigitsSpec, build_spoken_digits, make_requests
from speech.data.espeak import Utterance
from speech.data.pico import PICO_PREFIX, VOICES

SIZES = {"train": 200, "val": 20, "test": 20}


def _plan(fraction: float, monkeypatch) -> list:
    monkeypatch.setattr("speech.data.pico.require_pico", lambda: None)  # the plan needs no engine
    return make_requests(DigitsSpec(num_utterances=SIZES, pico_fraction=fraction))


def test_pico_speaks_its_share_of_training_only_and_leaves_the_espeak_draws(monkeypatch):
    plain, mixed = _plan(0.0, monkeypatch), _plan(0.3, monkeypatch)
    pico = [(split, u) for split, _, u in mixed if u.voice.startswith(PICO_PREFIX)]
    assert {split for split, _ in pico} == {"train"}
    assert 0.2 < len(pico) / SIZES["train"] < 0.4  # a binomial share of 200 at p = 0.3
    assert {u.voice.removeprefix(PICO_PREFIX) for _, u in pico} == set(VOICES)
    for (s0, t0, u0), (s1, t1, u1) in zip(plain, mixed, strict=True):
        assert (s0, t0) == (s1, t1)  # same texts and splits; only the engine of some training rows changes
        if not u1.voice.startswith(PICO_PREFIX):
            assert u0 == u1


def test_missing_pico_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "ttspico", None)  # import fails as if not installed
    with pytest.raises(InputError, match="pip install ttspico"):
        DigitsSpec(pico_fraction=0.5)
    with pytest.raises(ValueError, match="pico_fraction"):
        DigitsSpec(pico_fraction=1.5)


def test_pico_waves_are_reproducible_and_follow_the_rate():
    pytest.importorskip("ttspico")
    from speech.data.pico import synthesize

    slow, fast = (Utterance("four one one seven nine", "pico:en-US", rate=r, pitch=50) for r in (130, 230))
    first = synthesize(slow)
    synthesize(Utterance("two two two", "pico:en-GB"))  # an engine remembers; a fresh one per utterance forgets
    assert np.array_equal(first, synthesize(slow))
    ratio = len(first) / len(synthesize(fast))
    assert 1.4 < ratio < 2.0  # 230 / 130 = 1.77 times the words per minute, less the fixed lead/trail
    assert np.abs(first.astype(float)).max() > 3000


def test_mixed_set_builds_with_pico_rows_at_the_model_rate():
    pytest.importorskip("ttspico")
    spec = DigitsSpec(num_utterances={"train": 8, "val": 2, "test": 2}, pico_fraction=0.5, batch=4)
    data = build_spoken_digits(spec, progress=False)
    lengths = np.diff(data["offsets"].numpy())
    voices = data["voice"]
    assert any(v.startswith(PICO_PREFIX) for v in voices)
    for k, (text, n) in enumerate(zip(data["text"], lengths, strict=True)):
        seconds = n / data["sample_rate"]
        assert 0.25 * len(text.split()) < seconds < 1.2 * len(text.split()) + 0.6, (voices[k], text, seconds)
    again = build_spoken_digits(spec, progress=False)
    assert torch.equal(data["audio"], again["audio"])
