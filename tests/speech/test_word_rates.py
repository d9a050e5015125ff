"""A pace per word in the eSpeak training utterances (``data.word_rate_p``): SSML markup, its effect on the
speech, and a request plan where nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest

from speech.data.digits import DigitsSpec, SpokenDigitsDataModule, make_requests
from speech.data.espeak import Utterance, run_batch_in_subprocess
from engine_plans import assert_first_epoch_draws_only, request_plan

SIZES = {"train": 400, "val": 20, "test": 20}


def _speech_seconds(wave: np.ndarray, sr: int) -> float:
    """From the first to the last sample above 2 % of the peak."""
    loud = np.nonzero(np.abs(wave.astype(float)) > 0.02 * np.abs(wave).max())[0]
    return (loud[-1] - loud[0]) / sr


def test_markup_is_plain_text_without_paces_and_ssml_with_them():
    assert Utterance("two four", "en").markup() == ("two four", 1)
    text, flags = Utterance("two <four>", "en", word_rates=(100, 250)).markup()
    assert text == '<speak><prosody rate="100%">two</prosody> <prosody rate="250%">&lt;four&gt;</prosody></speak>'
    assert flags == 1 | 0x10  # UTF-8 and SSML
    with pytest.raises(ValueError, match="2 word rates for the 3 words"):
        Utterance("one two three", "en", word_rates=(100, 90)).markup()


def test_a_word_at_its_own_pace_takes_that_share_of_its_time(tmp_path):
    reqs = [Utterance("two four six", "en", seed=1), Utterance("two four six", "en", seed=1, word_rates=(100, 100, 100)),
            Utterance("two four six", "en", seed=1, word_rates=(100, 250, 100)),
            Utterance("two four six", "en", seed=1, word_rates=(60, 100, 60))]
    sr, waves = run_batch_in_subprocess(reqs, str(tmp_path / "w.npz"))
    plain, even, quick, slow = (_speech_seconds(w, sr) for w in waves)
    assert abs(even - plain) < 0.02  # the markup alone changes nothing that is spoken
    assert 0.1 < plain - quick < 0.3  # "four" (about 0.3 s) at 2.5 times the pace
    assert slow - plain > 0.3  # "two" and "six" at 0.6 times


def test_paces_are_drawn_for_espeaks_training_words_alone_and_move_nothing_else(monkeypatch):
    plain = request_plan(monkeypatch, SIZES, sphinx_fraction=0.5)
    paced = make_requests(DigitsSpec(num_utterances=SIZES, sphinx_fraction=0.5, word_rate_p=0.3))
    drawn, paced_rows = [], 0
    for (s0, t0, u0), (s1, t1, u1) in zip(plain, paced, strict=True):
        assert (s0, t0) == (s1, t1) and u0 == Utterance(**{**u1.__dict__, "word_rates": ()})
        if u1.word_rates:
            assert s1 == "train" and not u1.voice.startswith("sphinx") and len(u1.word_rates) == len(t1.split())
            drawn += list(u1.word_rates)
            paced_rows += 1
    espeak_rows = sum(1 for s, _, u in plain if s == "train" and not u.voice.startswith("sphinx"))
    assert abs(paced_rows / espeak_rows - 0.3) < 0.1  # the share of eSpeak's training utterances
    assert 60 <= min(drawn) and max(drawn) <= 250
    assert abs(np.median(np.log(drawn)) - np.log(np.sqrt(60 * 250))) < 0.15  # log-uniform: median at the mean


def test_the_sets_built_before_paces_keep_their_names_and_bad_paces_say_which():
    assert DigitsSpec().key() == "2d53febf9a"  # the cache file every earlier build wrote
    assert DigitsSpec(word_rate_p=0.3).key() != DigitsSpec().key()
    with pytest.raises(ValueError, match="data.word_rate_p=1.5"):
        DigitsSpec(word_rate_p=1.5)
    with pytest.raises(ValueError, match=r"data.word_rate=\[0, 100\]"):
        DigitsSpec(word_rate=(0, 100))


def test_espeak_first_epochs_hold_back_the_paced_utterances(tmp_path):
    sizes = {"train": 16, "val": 2, "test": 2}
    dm = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=sizes, word_rate_p=0.5,
                                espeak_first_epochs=1, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    even = {j for j, (split, _, u) in enumerate(make_requests(dm.spec)) if split == "train" and not u.word_rates}
    assert 0 < len(even) < 16
    assert_first_epoch_draws_only(dm, even, 16)
