"""Digit sequences spoken by a different synthesis engine, and a spoken-digits checkpoint scored on them.

The embedded set is spoken by eSpeak NG (a formant synthesiser); here the speaker is another engine that
shares no code, voice or phoneme data with it:

- ``--engine sam``: SAM (Software Automatic Mouth, a 1982 formant synthesiser, pure Python,
  ``pip install --no-deps samtts==0.3.0``), varying its speed, pitch, mouth and throat;
- ``--engine pico``: SVOX Pico (the statistical-parametric HMM synthesiser of early Android phones, female
  en-US and en-GB voices, ``pip install ttspico==0.3.2``, which compiles its C sources), varying rate and pitch;
- ``--engine dectalk``: DECtalk (a 1984 formant synthesiser with its own rules and dictionary, nine speakers,
  x86-64 Linux, ``pip install -e '.[dectalk]'``), varying speaker, rate and head size.

Each recording has 3-7 or 10-16 digits, is stored at 22,050, 16,000 or 8,000 Hz with a random level and
lead/trail silence, and goes through ``mas-predict``'s own path (:func:`speech.predict.transcribe_files`).

    python bench/other_engine_digits.py --ckpt outputs/runs/<spoken_digits run>/checkpoints/last.ckpt \
        [--engine sam|pico|dectalk] [--per-length 100] [--join 4] [--chunk-seconds 20]

prints the word error rate per sequence length, per stored sample rate and overall (torchmetrics' WER);
``--join K`` scores ``--per-length`` long recordings instead, each K sequences of 3-7 digits with 0.6-1.2 s
of silence between them in one file (a person reading out K numbers). ``--lexicon none`` scores the
free spelling of a checkpoint trained with a lexicon, ``--lexicon digits`` holds
one trained without.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import wave
from pathlib import Path
from typing import NamedTuple

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LENGTHS = {"short (3-7 digits)": (3, 7), "long (10-16 digits)": (10, 16)}
STORED_RATES = (22050, 16000, 8000)


class Recording(NamedTuple):
    path: Path
    text: str
    group: str  # a key of LENGTHS, or joined sequences (make_joined)
    rate: int  # the stored sample rate (a narrow band costs more than any length)


def sam_wave(text: str, rng: np.random.Generator) -> np.ndarray:
    """float32 waveform at 22,050 Hz of ``text`` in a random SAM voice."""
    from speech.data.sam import speak

    return speak(text, speed=int(rng.integers(55, 95)), pitch=int(rng.integers(45, 100)),
                 mouth=int(rng.integers(110, 190)), throat=int(rng.integers(100, 190)))


def pico_wave(text: str, rng: np.random.Generator) -> np.ndarray:
    """float32 waveform at 16,000 Hz of ``text`` in a random SVOX Pico voice, rate and pitch (80-130 %)."""
    from speech.data.pico import VOICES, speak

    wave = speak(text, VOICES[int(rng.integers(len(VOICES)))], rate=int(rng.integers(80, 131)),
                 pitch=int(rng.integers(80, 131)))
    return wave.astype(np.float32) / 32768.0


def dectalk_wave(text: str, rng: np.random.Generator) -> np.ndarray:
    """float32 waveform at 11,025 Hz of ``text`` by a random DECtalk speaker, rate (120-240 words per minute)
    and head size (88-112 %, whatever the speaker's own)."""
    from speech.data.dectalk import SPEAKERS, speak

    wave = speak(text, speaker=int(rng.integers(len(SPEAKERS))), rate=int(rng.integers(120, 241)),
                 head_size=int(rng.integers(88, 113)))
    return wave.astype(np.float32) / 32768.0


ENGINES = {"sam": (sam_wave, 22050), "pico": (pico_wave, 16000), "dectalk": (dectalk_wave, 11025)}


def digit_text(rng: np.random.Generator, lo: int, hi: int) -> str:
    """``lo`` to ``hi`` digit words drawn uniformly ("four one one seven")."""
    return " ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, int(rng.integers(lo, hi + 1))))


def write_wav(path: Path, x: np.ndarray, sr_in: int, sr_out: int, rng: np.random.Generator) -> None:
    """Resample, pad with 0.1-0.8 s of faint noise each side, scale the peak to 0.1-0.9, store int16."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    y = resample_poly(x - x.mean(), sr_out // g, sr_in // g)
    y = np.pad(y, [int(rng.uniform(0.1, 0.8) * sr_out) for _ in range(2)])
    y = y / (np.abs(y).max() or 1.0) * rng.uniform(0.1, 0.9)
    y = y + rng.normal(0, 1e-3, y.shape)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr_out)
        f.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())


def make_recordings(folder: Path, per_length: int, seed: int = 0,
                    engine: str = "sam") -> list[Recording]:
    """Write the recordings and return them."""
    speak, rate = ENGINES[engine]
    rng = np.random.default_rng(seed)
    out = []
    for group, (lo, hi) in LENGTHS.items():
        for i in range(per_length):
            text = digit_text(rng, lo, hi)
            path = folder / f"{group.split()[0]}_{i:03d}.wav"
            voice = speak(text, rng)  # drawn before the rate: the recordings measured so far keep their draws
            stored = int(rng.choice(STORED_RATES))
            write_wav(path, voice, rate, stored, rng)
            out.append(Recording(path, text, group, stored))
    return out


def make_joined(folder: Path, count: int, k: int, seed: int = 0, engine: str = "sam") -> list[Recording]:
    """Write ``count`` long recordings, each ``k`` digit sequences of 3-7 digits in one voice draw per
    sequence with 0.6-1.2 s of silence between them, stored as one file (one level, one rate, one noise
    floor: :func:`write_wav`), and return them."""
    speak, rate = ENGINES[engine]
    rng = np.random.default_rng(seed)
    lo, hi = LENGTHS["short (3-7 digits)"]
    out = []
    for i in range(count):
        texts = [digit_text(rng, lo, hi) for _ in range(k)]
        parts = []
        for j, text in enumerate(texts):
            voice = speak(text, rng)
            if j:
                parts.append(np.zeros(int(rng.uniform(0.6, 1.2) * rate), np.float32))
            parts.append(voice - voice.mean())
        path = folder / f"joined_{i:03d}.wav"
        stored = int(rng.choice(STORED_RATES))
        write_wav(path, np.concatenate(parts), rate, stored, rng)
        out.append(Recording(path, " ".join(texts), f"joined ({k} sequences)", stored))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--engine", choices=sorted(ENGINES), default="sam")
    ap.add_argument("--per-length", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="folder to keep the recordings in (default: a temporary one)")
    ap.add_argument("--join", type=int, default=1,
                    help="score --per-length long recordings instead, each K sequences of 3-7 digits with pauses")
    ap.add_argument("--chunk-seconds", type=float, default=20.0, help="mas-predict's chunk_seconds")
    ap.add_argument("--lexicon", choices=["ckpt", "none", "digits"], default="ckpt",
                    help="decode with the checkpoint's lexicon, none (free spelling), or the ten digit words")
    args = ap.parse_args(argv)
    if args.join < 1 or args.per_length < 1:
        ap.error(f"--join={args.join} and --per-length={args.per_length} must be at least 1.")
    with contextlib.ExitStack() as stack:  # a temporary folder goes away with its recordings
        folder = Path(args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="other_engine_digits_")))
        folder.mkdir(parents=True, exist_ok=True)
        score(folder, args)


def score(folder: Path, args: argparse.Namespace) -> None:
    """Speak the recordings into ``folder``, transcribe them with ``mas-predict``'s path, print the WERs."""
    from torchmetrics.functional.text import word_error_rate

    from core.train.run import load_for_predict
    from speech.predict import transcribe_files

    if args.join > 1:
        recordings = make_joined(folder, args.per_length, args.join, args.seed, args.engine)
    else:
        recordings = make_recordings(folder, args.per_length, args.seed, args.engine)
    _, dm, module = load_for_predict(args.ckpt)
    if args.lexicon != "ckpt":
        module.lexicon = list(DIGIT_WORDS) if args.lexicon == "digits" else None
    with contextlib.redirect_stdout(io.StringIO()):
        request = {"input": str(folder), "chunk_seconds": args.chunk_seconds}
        results = transcribe_files(module=module, datamodule=dm, request=request, out_dir=str(folder))
    got = {Path(r["file"]).name: r.get("text", "") for r in results}
    groups = {g: [r for r in recordings if r.group == g] for g in dict.fromkeys(r.group for r in recordings)}
    groups |= {f"stored at {hz} Hz": [r for r in recordings if r.rate == hz]
               for hz in sorted({r.rate for r in recordings})}
    groups["all"] = recordings
    for group, recs in groups.items():
        wer = float(word_error_rate([got.get(r.path.name, "") for r in recs], [r.text for r in recs]))
        print(f"{group:22s} WER {wer:.3f}  (n={len(recs)})")


if __name__ == "__main__":
    main()
