"""The HMM synthesiser on PocketSphinx's acoustic model: the model read right, the vocoder invertible by Sphinx's
own front end, the engine training-only and drawn after SAM's share."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest
from engine_plans import assert_first_epoch_draws_only, request_plan
from scipy.fft import dct

from core.train.errors import InputError
from speech.data.digits import DigitsSpec, SpokenDigitsDataModule, make_requests
from speech.data.espeak import Utterance
from speech.data.pico import PICO_PREFIX
from speech.data.sam import SAM_PREFIX
from speech.data.sphinx import SPHINX_PREFIX

SIZES = {"train": 300, "val": 20, "test": 20}


def _sphinx_front_end(wave: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Sphinx's MFCC from its parameters (feat.params): 0.97 pre-emphasis, 410-sample Hamming frames every 160,
    512-point power spectrum, 25 unit-area mel triangles 130-6800 Hz (not rounded to FFT bins as Sphinx's are),
    log, DCT-II, lifter 22."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    edges = 700 * (10 ** (np.linspace(mel(130), mel(6800), 27) / 2595) - 1)
    f = np.fft.rfftfreq(512, 1 / sr)
    bank = np.stack([np.clip(np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)), 0, None) * 2 / (hi - lo)
                     for lo, c, hi in zip(edges, edges[1:], edges[2:])])
    y = np.append(wave[0], wave[1:] - 0.97 * wave[:-1])
    frames = np.stack([y[i:i + 410] for i in range(0, len(y) - 409, 160)]) * np.hamming(410)
    log_mel = np.log(np.maximum((np.abs(np.fft.rfft(frames, 512)) ** 2) @ bank.T, 1e-10))
    return dct(log_mel, type=2, norm="ortho", axis=-1)[:, :13] * (1 + 11 * np.sin(np.pi * np.arange(13) / 22))


def test_model_reads_as_speech_statistics():
    from speech.data.sphinx_model import load_model, pronunciations

    model = load_model()
    assert len(model.phones) == 42 and model.means.shape == model.variances.shape == (42, 3, 128, 13)
    assert model.weights.shape == (len(model.senone_codebook), 3, 128) and (model.variances > 0).all()
    np.testing.assert_allclose(model.weights.sum(-1), 1.0)
    # deltas and delta-deltas rise as often as they fall: their Gaussians centre on zero (the speech phones')
    changes = model.means[2:, 1:]
    assert (np.abs(changes.mean((0, 2))) < 0.1 * changes.std((0, 2))).all()
    expected_frames = 1 / (1 - model.self_loops)  # a state lasts 10-200 ms, a typical one 20-50 ms
    assert model.self_loops.shape == (42, 3) and expected_frames.min() > 1 and expected_frames.max() < 20
    assert 2 < np.median(expected_frames) < 5

    def level(phone):  # c0 expected over the middle state's mixture
        senone = model.context_free_states(model.index(phone))[0][1]
        return float(model.weights[senone, 0] @ model.means[model.senone_codebook[senone], 0, :, 0])

    assert level("AA") - level("SIL") > 15  # an open vowel sits far above silence (c0 = 5 x mean log power)
    ay, f, v = (model.index(p) for p in ("AY", "F", "V"))
    senones, _ = model.states(ay, f, v, 0)
    alone, _ = model.context_free_states(ay)
    assert not np.array_equal(senones, alone)  # "five" has its own triphone
    assert (model.senone_codebook[senones] == ay).all() and (model.senone_codebook[alone] == ay).all()
    unseen, _ = model.states(ay, model.index("SIL"), model.index("SIL"), 7)  # no such word position
    np.testing.assert_array_equal(unseen, alone)
    assert pronunciations()["zero"] == [["Z", "IH", "R", "OW"], ["Z", "IY", "R", "OW"]]


def test_trajectory_is_the_weighted_least_squares_over_sphinx_windows():
    from speech.data.sphinx import trajectory

    rng = np.random.default_rng(1)
    frames = 40
    means = rng.normal(size=(frames, 3, 13))
    variances = rng.uniform(0.2, 3.0, size=(frames, 3, 13))
    got = trajectory(means, variances)

    def at(t):  # Sphinx repeats the edge frames
        return min(max(t, 0), frames - 1)

    windows = np.zeros((3, frames, frames))
    for t in range(frames):
        windows[0, t, t] = 1
        windows[1, t, at(t + 2)] += 1
        windows[1, t, at(t - 2)] -= 1
        for k, sign in ((3, 1), (-1, -1), (1, -1), (-3, 1)):
            windows[2, t, at(t + k)] += sign
    for k in range(13):
        scale = 1 / np.sqrt(variances[:, :, k].T)  # (3, frames)
        lhs = (windows * scale[:, :, None]).reshape(3 * frames, frames)
        want = np.linalg.lstsq(lhs, (means[:, :, k].T * scale).ravel(), rcond=None)[0]
        np.testing.assert_allclose(got[:, k], want, atol=1e-8)
    # held by its static Gaussians alone, the trajectory is their means
    loose = variances.copy()
    loose[:, 1:] = 1e12
    np.testing.assert_allclose(trajectory(means, loose), means[:, 0], atol=1e-6)


def test_sphinx_front_end_recovers_the_drawn_cepstra():
    from speech.data.sphinx import cepstra, vocode
    from speech.data.sphinx_model import load_model

    rng = np.random.default_rng(0)
    cep, voicing = cepstra("seven three nine", rng)
    got = _sphinx_front_end(vocode(cep, voicing, rng, f0=120).astype(np.float64))
    n = min(len(got), len(cep) - 1)
    # Sphinx's 410-sample frame j is centred 1.3 hops after the synthesis frame j, nearest its frame j + 1
    drawn, heard = cep[1:n + 1] - cep[1:n + 1].mean(0), got[:n] - got[:n].mean(0)
    corr = np.array([np.corrcoef(drawn[:, k], heard[:, k])[0, 1] for k in range(13)])
    spread = heard.std(0) / drawn.std(0)
    assert (corr[:4] > 0.93).all() and (0.85 < spread[:5]).all() and (spread[:5] < 1.15).all()  # broad shape
    # the error against how far the model's phones spread each coefficient: small for the broad shape, under
    # the spread for formant detail (the top coefficients also see the pitch harmonics)
    model = load_model()
    error = np.sqrt(((heard - drawn) ** 2).mean(0)) / model.means[2:, 0].std((0, 1))  # past the noise phones
    assert (error[:5] < 0.35).all() and (error[5:11] < 0.8).all()


def test_a_real_speech_decoder_reads_the_engine_and_no_energy_sits_below_60_hz(tmp_path):
    from pocketsphinx import Decoder

    from speech.data.sphinx import sphinx_voice, synthesize

    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    grammar = tmp_path / "digits.gram"
    grammar.write_text("#JSGF V1.0;\ngrammar digits;\npublic <s> = (" + " | ".join(words) + ")+;\n")
    decoder = Decoder(jsgf=str(grammar), loglevel="FATAL")
    rng = np.random.default_rng(5)
    said_all, heard_all = [], []
    for i in range(20):
        said = [words[d] for d in rng.integers(0, 10, 5)]
        wave = synthesize(Utterance(" ".join(said), sphinx_voice(rng), rate=int(rng.integers(130, 231)), seed=i))
        power = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
        assert power[np.fft.rfftfreq(len(wave), 1 / 16000) < 60].sum() < 0.02 * power.sum()
        decoder.start_utt()
        decoder.process_raw(wave.tobytes(), full_utt=True)
        decoder.end_utt()
        said_all.append(" ".join(said))
        heard_all.append(decoder.hyp().hypstr if decoder.hyp() else "")
    assert jiwer.wer(said_all, heard_all) < 0.2  # about 0.07 on 80 sequences (speech.data.sphinx)


def test_engine_is_reproducible_and_follows_the_voice():
    from speech.data.sphinx import SAMPLE_RATE, synthesize

    u = Utterance("four one one seven", f"{SPHINX_PREFIX}120,100", rate=175, pitch=50, seed=3)
    wave = synthesize(u)
    assert wave.dtype == np.int16 and 0.8 < len(wave) / SAMPLE_RATE < 4.0 and np.abs(wave).max() > 20000
    np.testing.assert_array_equal(wave, synthesize(u))
    fast = synthesize(Utterance(u.text, u.voice, rate=230, pitch=50, seed=3))
    assert len(fast) < len(wave)  # same draws, shorter states
    with pytest.raises(InputError, match="no pronunciation for 'fourty'"):
        synthesize(Utterance("fourty", u.voice))


def test_sphinx_takes_its_share_after_sam_and_leaves_the_other_draws(monkeypatch):
    before = request_plan(monkeypatch, SIZES, pico_fraction=0.2, sam_fraction=0.2)
    after = request_plan(monkeypatch, SIZES, pico_fraction=0.2, sam_fraction=0.2, sphinx_fraction=0.3)
    drawn = [(split, u) for split, _, u in after if u.voice.startswith(SPHINX_PREFIX)]
    assert {split for split, _ in drawn} == {"train"} and 0.2 < len(drawn) / SIZES["train"] < 0.4
    for (s0, t0, u0), (s1, t1, u1) in zip(before, after, strict=True):
        assert (s0, t0) == (s1, t1)
        if u0.voice.startswith((PICO_PREFIX, SAM_PREFIX)) or not u1.voice.startswith(SPHINX_PREFIX):
            assert u0 == u1  # Pico's, SAM's and eSpeak's rows stay as they were
    for _, u in drawn:
        f0, warp = map(int, u.voice.removeprefix(SPHINX_PREFIX).split(","))
        assert 85 <= f0 <= 240 and 88 <= warp <= 112


def test_missing_model_and_bad_shares_say_what_to_do(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(InputError, match="pip install pocketsphinx"):
        DigitsSpec(sphinx_fraction=0.5)
    monkeypatch.setattr("speech.data.sphinx.require_sphinx", lambda: None)
    with pytest.raises(ValueError, match="sphinx_fraction"):
        DigitsSpec(sphinx_fraction=1.5)


def test_espeak_first_epochs_hold_back_the_sphinx_share(tmp_path):
    sizes = {"train": 12, "val": 2, "test": 2}
    dm = SpokenDigitsDataModule(cache_dir=str(tmp_path), num_utterances=sizes, sphinx_fraction=0.5,
                                espeak_first_epochs=1, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    voices = [u.voice for split, _, u in make_requests(dm.spec) if split == "train"]
    by_espeak = {j for j, v in enumerate(voices) if not v.startswith(SPHINX_PREFIX)}
    assert 0 < len(by_espeak) < 12
    assert_first_epoch_draws_only(dm, by_espeak, 12)


def test_the_cache_knows_the_engine_revision_where_the_engine_speaks(monkeypatch, tmp_path):
    from speech.data import sphinx

    plain, spoken = DigitsSpec(), DigitsSpec(sphinx_fraction=0.5)
    longer = SpokenDigitsDataModule(cache_dir=str(tmp_path), sphinx_fraction=0.5, size_ratio=2)
    keys = plain.key(), spoken.key(), longer.test_spec.key()
    monkeypatch.setattr(sphinx, "REVISION", sphinx.REVISION + 1)
    assert spoken.key() != keys[1]  # a changed engine rebuilds the sets it speaks in ...
    assert plain.key() == keys[0] and longer.test_spec.key() == keys[2]  # ... and no other (eSpeak's test split)


@pytest.mark.parametrize("epochs, shares, message", [
    (None, {"sphinx_fraction": 0.5}, "whole number"), (1.5, {"sphinx_fraction": 0.5}, "whole number"),
    (-1, {"sphinx_fraction": 0.5}, "whole number"), (2, {}, "above 0"), (2, {"sphinx_fraction": 1.0}, "less than 1")])
def test_espeak_first_epochs_refuses_what_cannot_work(tmp_path, epochs, shares, message):
    with pytest.raises(InputError, match=message):
        SpokenDigitsDataModule(cache_dir=str(tmp_path), espeak_first_epochs=epochs, **shares)
