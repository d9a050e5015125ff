"""Drawn eSpeak voices: readable by the engine, reproducible, moving formants as drawn, training-only."""

from __future__ import annotations

import numpy as np
import pytest

from speech.data.digits import SPLITS, DigitsSpec, make_requests
from speech.data.espeak import Utterance, available_variants, run_batch_in_subprocess, wheel_data_path
from speech.data.voices import FORMANT_SCALE, MAX_VOICES, random_variant, random_voice_names, voice_data_dir


def _f1_centroid(wave: np.ndarray, sr: int) -> float:
    """Power-weighted mean frequency below 1.2 kHz, where the first formant of an open vowel sits."""
    power = np.abs(np.fft.rfft(wave.astype(float))) ** 2
    f = np.fft.rfftfreq(len(wave), 1 / sr)
    band = f < 1200
    return float((power[band] * f[band]).sum() / power[band].sum())


def test_overlay_holds_the_wheel_and_the_drawn_voices(tmp_path):
    root = voice_data_dir(tmp_path, wheel_data_path(), 3, seed=0)
    names = set(available_variants(root))
    assert set(available_variants()) | set(random_voice_names(3)) == names
    again = voice_data_dir(tmp_path / "again", wheel_data_path(), 3, seed=0)
    for name in random_voice_names(3):
        assert (root / "voices" / "!v" / name).read_text() == (again / "voices" / "!v" / name).read_text()
    # A fresh process per data folder: the library is a process-wide singleton (speech.data.espeak.Espeak).
    _, (wave,) = run_batch_in_subprocess([Utterance("seven four", f"en+{random_voice_names(3)[1]}")],
                                         str(tmp_path / "drawn.npz"), root)
    assert np.abs(wave).max() > 1000
    with pytest.raises(ValueError, match="can be drawn"):  # eSpeak would silently lose voices past its list's end
        voice_data_dir(tmp_path / "many", wheel_data_path(), MAX_VOICES, seed=0)


def test_drawn_formants_stay_in_their_ranges():
    for i in range(20):
        text = random_variant("v", np.random.default_rng(i))
        for line in text.splitlines():
            if line.startswith("formant"):
                n, freq = (int(v) for v in line.split()[1:3])
                assert FORMANT_SCALE[n][0] <= freq <= FORMANT_SCALE[n][1]


def test_first_formant_follows_the_voice_file(tmp_path):
    root = voice_data_dir(tmp_path, wheel_data_path(), 0, seed=0)
    for name, f1 in (("low", 75), ("high", 145)):
        (root / "voices" / "!v" / name).write_text(f"language variant\nname {name}\nformant 1 {f1} 100 100\n")
    sr, waves = run_batch_in_subprocess([Utterance("ah ah", f"en+{n}") for n in ("low", "high")],
                                        str(tmp_path / "f1.npz"), root)
    low, high = (_f1_centroid(w, sr) for w in waves)
    assert high > 1.4 * low  # 145 % vs 75 % of the table's F1 moves the low band's centre by about that much


def test_drawn_voices_speak_half_the_training_set_only():
    spec = DigitsSpec(num_utterances={"train": 40, "val": 6, "test": 6}, random_voices=5)
    reqs = make_requests(spec)
    drawn = set(random_voice_names(5))
    by_split = {s: [u.voice.split("+")[1] for split, _, u in reqs if split == s] for s in SPLITS}
    assert sum(v in drawn for v in by_split["train"]) == 20 and set(by_split["train"]) & drawn == drawn
    assert not (set(by_split["val"]) | set(by_split["test"])) & drawn
    for bad in (-1, MAX_VOICES):
        with pytest.raises(ValueError, match="random_voices"):
            DigitsSpec(random_voices=bad)
