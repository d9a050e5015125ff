"""SAM (Software Automatic Mouth), an optional third synthesis engine for the embedded speech sets.

SAM is a 1982 formant synthesiser with its own phoneme rules and a three-formant voice set by four knobs
(speed, pitch, mouth, throat); it shares no code or data with eSpeak NG or SVOX Pico. The ``samtts`` package
is pure Python (``pip install --no-deps samtts==0.3.0``: its declared dependencies are only for playback),
so it needs no compiler. Mouth and throat are drawn over the span of SAM's own presets (100-200 each); speed
and pitch follow the utterance's eSpeak rate and pitch (:func:`synthesize`). One utterance takes about 10 ms,
in process.
"""

from __future__ import annotations

import numpy as np

from core.train.errors import InputError
from speech.data.espeak import Utterance

__all__ = ["SAMPLE_RATE", "SAM_PREFIX", "is_engine", "require_sam", "sam_voice", "speak", "synthesize"]

SAMPLE_RATE = 22050
SAM_PREFIX = "sam:"
_MOUTH, _THROAT = (100, 200), (100, 200)


def require_sam() -> None:
    """Raise one clear sentence when the ``samtts`` package is not installed."""
    try:
        import samtts  # noqa: F401
    except ImportError:
        raise InputError("data.sam_fraction > 0 needs SAM: pip install --no-deps samtts==0.3.0.") from None


def sam_voice(rng: np.random.Generator) -> str:
    """A SAM voice name for :attr:`Utterance.voice`: ``sam:<mouth>,<throat>`` drawn uniformly."""
    return f"{SAM_PREFIX}{int(rng.integers(_MOUTH[0], _MOUTH[1] + 1))},{int(rng.integers(_THROAT[0], _THROAT[1] + 1))}"


def is_engine(u: Utterance) -> bool:
    return u.voice.startswith(SAM_PREFIX)


def speak(text: str, *, speed: int = 72, pitch: int = 64, mouth: int = 128, throat: int = 128) -> np.ndarray:
    """float32 waveform ``(T,)`` in [-1, 1) at :data:`SAMPLE_RATE` of ``text`` (SAM's knobs, 0-255 each; a
    larger ``speed`` is slower, a larger ``pitch`` lower)."""
    from samtts import SamTTS

    knobs = [int(np.clip(k, 1, 255)) for k in (speed, pitch, mouth, throat)]
    voice = SamTTS(speed=knobs[0], pitch=knobs[1], mouth=knobs[2], throat=knobs[3])
    raw = np.frombuffer(bytes(voice.get_audio_data(text)), dtype=np.uint8).astype(np.float32)
    return (raw - 128.0) / 128.0


def synthesize(u: Utterance) -> np.ndarray:
    """:func:`speak` of a SAM utterance as int16. eSpeak's settings map onto SAM's knobs: rate 130-230 words per
    minute onto speed 100-60 (slower is larger), pitch 0..100 onto 90-30 (higher is smaller)."""
    mouth, throat = (int(v) for v in u.voice.removeprefix(SAM_PREFIX).split(","))
    speed = round(100 - 40 * (u.rate - 130) / 100)
    pitch = round(90 - 0.6 * u.pitch)
    x = speak(u.text, speed=speed, pitch=pitch, mouth=mouth, throat=throat)
    x = x - x.mean()  # SAM's 8-bit output sits off zero; centred, its negative peak may pass -1
    return (x / max(1.0, float(np.abs(x).max())) * 32767).astype(np.int16)
