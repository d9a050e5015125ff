"""SAM as a third engine of the spoken digits: training-only, drawn after Pico's share, eSpeak's draws untouched.

Tests that synthesise need ``pip install --no-deps samtts==0.3.0`` and skip without it; the request plan and the
missing-package message are checked everywhere.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine_plans import assert_only_the_added_rows_move, plan_digest, request_plan

from core.train.errors import InputError
from speech.data.digits import DigitsSpec, build_spoken_digits
from speech.data.espeak import Utterance
from speech.data.pico import PICO_PREFIX
from speech.data.sam import SAM_PREFIX

SIZES = {"train": 300, "val": 20, "test": 20}
# sha1 of repr(make_requests(...)) for these sizes, computed on the code before SAM existed (commit 09f0487)
PLAN_DIGESTS = {0.0: "1f3aad563374bb33d6242d6f1cc42a93f71aefc1", 0.2: "73b00ce0d6b2482ea4c4628386d0ca35f1684ec1"}


def test_sam_takes_its_share_after_pico_and_leaves_the_other_draws(monkeypatch):
    plain = request_plan(monkeypatch, SIZES)
    pico_only = request_plan(monkeypatch, SIZES, pico_fraction=0.2)
    for fraction, plan in ((0.0, plain), (0.2, pico_only)):  # the plans without SAM are the ones before it
        assert plan_digest(plan) == PLAN_DIGESTS[fraction]
    both = request_plan(monkeypatch, SIZES, pico_fraction=0.2, sam_fraction=0.3)
    sam = [(split, u) for split, _, u in both if u.voice.startswith(SAM_PREFIX)]
    assert {split for split, _ in sam} == {"train"}
    assert 0.2 < len(sam) / SIZES["train"] < 0.4  # a binomial share of 300 at p = 0.3
    for split, u in sam:
        mouth, throat = map(int, u.voice.removeprefix(SAM_PREFIX).split(","))
        assert 100 <= mouth <= 200 and 100 <= throat <= 200
    assert_only_the_added_rows_move(plain, pico_only, both, added=SAM_PREFIX, kept=PICO_PREFIX)


def test_missing_sam_and_bad_shares_say_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "samtts", None)  # import fails as if not installed
    with pytest.raises(InputError, match="pip install --no-deps samtts"):
        DigitsSpec(sam_fraction=0.5)
    monkeypatch.setattr("speech.data.pico.require_pico", lambda: None)
    monkeypatch.setattr("speech.data.sam.require_sam", lambda: None)
    with pytest.raises(ValueError, match="add up to at most 1"):
        DigitsSpec(pico_fraction=0.6, sam_fraction=0.6)
    with pytest.raises(ValueError, match="sam_fraction"):
        DigitsSpec(sam_fraction=-0.1)


def test_sam_waves_follow_the_rate_and_are_centred():
    pytest.importorskip("samtts")
    from speech.data.sam import speak, synthesize

    slow, fast = (Utterance("four one one seven nine", "sam:128,128", rate=r, pitch=50) for r in (130, 230))
    first = synthesize(slow)
    raw = speak("four one one seven nine", speed=100, pitch=60, mouth=128, throat=128)
    ref = (raw - raw.mean()) / max(1.0, np.abs(raw - raw.mean()).max())
    assert np.abs(first / 32767 - ref).max() < 1e-4  # the engine's samples, centred, without wrapping around
    assert np.array_equal(first, synthesize(slow))
    ratio = len(first) / len(synthesize(fast))
    assert 1.3 < ratio < 2.0  # SAM's speed 100 vs 60 (its knob is a time scale: 1.67)
    assert np.abs(first.astype(float)).max() > 3000
    assert abs(float(first.mean())) < 50  # the 8-bit engine's offset removed


def test_mixed_set_builds_with_sam_rows_at_the_model_rate():
    pytest.importorskip("samtts")
    spec = DigitsSpec(num_utterances={"train": 8, "val": 2, "test": 2}, sam_fraction=0.5, batch=4)
    data = build_spoken_digits(spec, progress=False)
    lengths = np.diff(data["offsets"].numpy())
    assert any(v.startswith(SAM_PREFIX) for v in data["voice"])
    for voice, text, n in zip(data["voice"], data["text"], lengths, strict=True):
        seconds = n / data["sample_rate"]
        assert 0.2 * len(text.split()) < seconds < 1.2 * len(text.split()) + 0.6, (voice, text, seconds)
