"""eSpeak NG through ``ctypes`` on the library bundled by the ``espeakng-loader`` wheel.

No system package is needed: the wheel ships ``libespeak-ng.so`` and ``espeak-ng-data``.
The engine keeps state between calls (the waveform of one utterance depends on the ones
synthesised before it in the same process), so reproducible builds synthesise a fixed list of
requests in a fixed order inside a fresh process: :func:`synthesize_batch` is that unit of
work, run by :mod:`speech.data.digits` as ``python -m speech.data.espeak OUT.npz < requests.json``, a fresh
process per batch (a subprocess, not ``multiprocessing``: no re-import of the caller's script).

This module imports only ``ctypes`` and ``numpy`` so spawned workers start quickly.
"""

from __future__ import annotations

import ctypes
import json
import sys
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_RATE", "Espeak", "Utterance", "available_variants", "data_root", "run_batch_in_subprocess", "synthesize_batch",
           "wheel_data_path"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10  # espeakSSML: the text is SSML markup
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
DEFAULT_RATE = 175  # words per minute: eSpeak's own default, the rate other engines' 100 % stands for
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_initialised_from: Path | None = None  # the data folder this process's library was started on


@dataclass(frozen=True)
class Utterance:
    """One synthesis request. ``voice`` is ``<language>+<variant>`` (e.g. ``en-us+f2``);
    ``rate`` in words per minute, ``pitch``/``pitch_range`` in 0..100, ``word_gap`` in 10 ms units;
    ``seed`` seeds the engine's noise generator (breathy variants draw from it); ``word_rates``, when given,
    one per word of ``text``, speaks each word at that percentage of ``rate`` (SSML prosody: a word
    stressed and drawn out, or reduced)."""

    text: str
    voice: str
    rate: int = DEFAULT_RATE
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0
    seed: int = 0
    word_rates: tuple[int, ...] = ()

    def markup(self) -> tuple[str, int]:
        """The text eSpeak reads and the flags that say how: plain, or SSML when ``word_rates`` are given."""
        if not self.word_rates:
            return self.text, _CHARS_UTF8
        words = self.text.split()
        if len(words) != len(self.word_rates):
            raise ValueError(f"{len(self.word_rates)} word rates for the {len(words)} words of '{self.text}'.")
        body = " ".join(f'<prosody rate="{int(r)}%">{escape(w)}</prosody>' for w, r in zip(words, self.word_rates))
        return f"<speak>{body}</speak>", _CHARS_UTF8 | _SSML


def wheel_data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped with the ``espeakng-loader`` wheel."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def data_root(data_path: str | Path | None = None) -> Path:
    """``data_path`` as a folder, or the wheel's when it is not given."""
    return Path(data_path) if data_path else wheel_data_path()


def available_variants(data_path: str | Path | None = None) -> list[str]:
    """Names of the voice variants in ``data_path`` (default: the wheel's: ``m1``, ``f3``, ``klatt`` ...)."""
    return sorted(p.name for p in (data_root(data_path) / "voices" / "!v").iterdir() if p.is_file())


class Espeak:
    """A synchronous eSpeak NG engine returning int16 waveforms at :attr:`sample_rate` (22,050 Hz).

    One data folder per process: the library is a process-wide singleton, and restarting it on another
    folder can crash the process, so that is refused (use :func:`run_batch_in_subprocess`). ``data_path`` is an
    ``espeak-ng-data`` folder (default: the wheel's; :func:`speech.data.voices.voice_data_dir` makes one
    with drawn voices).
    """

    def __init__(self, data_path: str | Path | None = None) -> None:
        import espeakng_loader

        global _initialised_from
        data_path = data_root(data_path).resolve()
        if _initialised_from is not None and _initialised_from != data_path:
            raise RuntimeError(f"eSpeak NG already runs on {_initialised_from} in this process; synthesise from "
                               f"{data_path} in a fresh process (speech.data.espeak.run_batch_in_subprocess).")
        self._lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.sample_rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), 0))
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise from the espeakng-loader wheel.")
        _initialised_from = data_path
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._variants = set(available_variants(data_path))

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # continue synthesis

    def synthesize(self, u: Utterance) -> np.ndarray:
        """Waveform ``(T,)`` int16 of one utterance."""
        lang, _, variant = u.voice.partition("+")
        if variant and variant not in self._variants:
            raise ValueError(f"unknown eSpeak voice variant '{variant}' in voice '{u.voice}'.")
        if self._lib.espeak_SetVoiceByName(u.voice.encode()) != 0:
            raise ValueError(f"unknown eSpeak voice '{u.voice}'.")
        for key, value in ((_RATE, u.rate), (_PITCH, u.pitch), (_RANGE, u.pitch_range), (_WORDGAP, u.word_gap),
                           (_VOLUME, 100)):
            self._lib.espeak_SetParameter(key, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(u.seed))
        self._chunks = []
        markup, flags = u.markup()
        text = markup.encode()
        err = self._lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
        self._lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"eSpeak NG failed on '{u.text}' (error {err}).")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synthesize_batch(requests: list[Utterance], data_path: str | None = None) -> tuple[int, list[np.ndarray]]:
    """Synthesise ``requests`` in order with a new engine; returns ``(sample_rate, waveforms)``.

    Run this in a fresh process for reproducible output (see the module docstring).
    """
    engine = Espeak(data_path)
    return engine.sample_rate, [engine.synthesize(u) for u in requests]


def run_batch_in_subprocess(requests: list[Utterance], out_path: str,
                            data_path: str | None = None) -> tuple[int, list[np.ndarray]]:
    """:func:`synthesize_batch` in a fresh Python process (reproducible); returns its result."""
    import subprocess

    payload = json.dumps([asdict(u) for u in requests])
    argv = [sys.executable, "-m", "speech.data.espeak", out_path] + ([str(data_path)] if data_path else [])
    proc = subprocess.run(argv, input=payload, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        last_line = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"eSpeak NG worker failed: {last_line}")
    with np.load(out_path) as z:
        sr = int(z["sample_rate"])
        lengths, audio = z["lengths"], z["audio"]
    return sr, np.split(audio, np.cumsum(lengths)[:-1])


def _main() -> None:
    requests = [Utterance(**(d | {"word_rates": tuple(d.get("word_rates", ()))})) for d in json.load(sys.stdin)]
    sr, waves = synthesize_batch(requests, sys.argv[2] if len(sys.argv) > 2 else None)
    audio = np.concatenate(waves) if waves else np.zeros(0, np.int16)
    np.savez(sys.argv[1], sample_rate=sr, lengths=np.array([len(w) for w in waves]), audio=audio)


if __name__ == "__main__":
    _main()
