"""Tiny audio corpora fabricated in the real on-disk layouts (LibriSpeech, JSONL manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

TEXTS = ["HELLO WORLD", "IT'S A TEST", "SPEECH RECOGNITION", "ONE TWO THREE", "GOOD MORNING", "THE END"]


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone with a little noise, ``(T,)`` or ``(T, channels)`` float32."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def write_librispeech(root: Path, subsets=("train-clean-100", "dev-clean", "test-clean"), sr: int = 16000,
                      utterances: int = 3, seconds: tuple[float, float] = (0.4, 0.8)) -> Path:
    """``root/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` plus ``.trans.txt``.

    Two speakers per subset, ``utterances`` each, durations spread evenly over ``seconds``.
    """
    for k, subset in enumerate(subsets):
        for spk in (19 + k, 27 + k):
            chap = 100 + spk
            d = root / "LibriSpeech" / subset / str(spk) / str(chap)
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            for u in range(utterances):
                uid, text = f"{spk}-{chap}-{u:04d}", TEXTS[u % len(TEXTS)]
                dur = seconds[0] + (seconds[1] - seconds[0]) * u / max(utterances - 1, 1)
                sf.write(d / f"{uid}.flac", tone(dur, sr, 200 + 50 * (u % 8), seed=u), sr)
                lines.append(f"{uid} {text}")
            (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def write_manifests(root: Path) -> dict[str, Path]:
    """Three JSONL manifests with relative paths to WAV/FLAC files of mixed rates and channel counts."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    out = {}
    for s, split in enumerate(("train", "val", "test")):
        lines = []
        for u, text in enumerate(TEXTS):
            sr, ch = ((8000, 1), (22050, 2), (16000, 1))[u % 3]
            name = f"audio/{split}_{u}.{'flac' if u % 2 else 'wav'}"
            x = tone(0.3 + 0.1 * u, sr, 300 + 40 * u, channels=ch, seed=10 * s + u)
            sf.write(root / name, x, sr)
            lines.append(json.dumps({"audio_filepath": name, "duration": len(x) / sr, "text": text.lower()}))
        out[split] = root / f"{split}.jsonl"
        out[split].write_text("\n".join(lines) + "\n")
    return out
