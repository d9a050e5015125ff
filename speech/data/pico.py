"""SVOX Pico, an optional second synthesis engine for the embedded speech sets.

eSpeak NG is a formant synthesiser; Pico (the statistical-parametric HMM synthesiser of early Android
phones) shares no code, voice or phoneme data with it. Measured on the spoken-digits recipe (n=3), a quarter
of the training set in Pico's voices takes Pico's WER from 0.28 to 0.11 but leaves a third engine (SAM) at
0.18, so the recipe does not use it; it is here for experiments. ``pip install ttspico==0.3.2`` compiles its C
sources (it needs a C compiler, which is why it is an opt-in extra, ``.[pico]``); its English voices are two
women (``en-US``, ``en-GB``). An engine's output depends on what it said before, so every utterance gets a
fresh one (7 ms), in process.
"""

from __future__ import annotations

import numpy as np

from core.train.errors import InputError
from speech.data.espeak import DEFAULT_RATE, Utterance

__all__ = ["PICO_PREFIX", "SAMPLE_RATE", "VOICES", "is_engine", "pico_voice", "require_pico", "speak", "synthesize"]

SAMPLE_RATE = 16000
VOICES = ("en-US", "en-GB")
PICO_PREFIX = "pico:"


def require_pico() -> None:
    """Raise one clear sentence when the ``ttspico`` package is not installed."""
    try:
        import ttspico  # noqa: F401
    except ImportError:
        raise InputError("data.pico_fraction > 0 needs SVOX Pico: pip install ttspico==0.3.2 "
                         "(or the '.[pico]' extra; it compiles C sources).") from None


def pico_voice(rng: np.random.Generator) -> str:
    """A Pico voice name for :attr:`Utterance.voice`, drawn from :data:`VOICES`."""
    return PICO_PREFIX + VOICES[int(rng.integers(len(VOICES)))]


def is_engine(u: Utterance) -> bool:
    return u.voice.startswith(PICO_PREFIX)


def speak(text: str, language: str, *, rate: int = 100, pitch: int = 100) -> np.ndarray:
    """int16 waveform ``(T,)`` at :data:`SAMPLE_RATE` of ``text`` by a fresh engine; ``rate`` and ``pitch`` in
    Pico's percentages (clipped to its 20-500 and 50-200)."""
    from ttspico import TtsEngine

    engine = TtsEngine(language)
    engine.rate = int(np.clip(rate, 20, 500))
    engine.pitch = int(np.clip(pitch, 50, 200))
    return np.frombuffer(engine.speak(text) or b"", dtype="<i2").copy()


def synthesize(u: Utterance) -> np.ndarray:
    """:func:`speak` of a Pico utterance. eSpeak's settings map onto Pico's percentages: rate in words per
    minute against eSpeak's 175, pitch 0..100 onto 70-130 % (Pico's voices are high; lower settings give
    deeper ones)."""
    return speak(u.text, u.voice.removeprefix(PICO_PREFIX), rate=round(100 * u.rate / DEFAULT_RATE),
                 pitch=round(70 + 0.6 * u.pitch))
