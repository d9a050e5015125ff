"""Reproducible eSpeak NG synthesis of many utterances, and the finishing every embedded clip gets.

The engine's output depends on its call history, so requests are cut into fixed batches and each
batch is synthesised in order in a fresh process (:func:`speech.data.espeak.run_batch_in_subprocess`);
batches run in parallel and the result does not depend on how many.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy.signal import resample_poly

from speech.data.espeak import Utterance, run_batch_in_subprocess

__all__ = ["ACCENTS", "SPLITS", "VOICE_VARIANTS", "check_voices", "finish", "spec_key", "synthesize_batches",
           "uniform_int"]

SPLITS = ("train", "val", "test")
#: eSpeak voice variants per split of every embedded speech set: val and test voices are never trained on
VOICE_VARIANTS = {
    "train": ["m1", "m2", "m3", "m4", "m5", "m8", "f1", "f2", "f4", "adam", "Alex", "Alicia", "Andrea", "Andy",
              "Annie", "aunty", "belinda", "benjamin", "caleb", "david", "ed", "edward", "Gene", "grandma",
              "grandpa", "Henrique", "Hugo", "iven", "Jacky", "john", "klatt", "klatt3", "Lee", "linda", "Marco",
              "max", "Michael", "Mike", "norbert", "quincy", "Reed", "rob", "robert", "steph", "travis", "victor",
              "zac"],
    "val": ["m6", "f3"],
    "test": ["m7", "f5"],
}
#: English language voices, combined with every variant
ACCENTS = ["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc"]


def check_voices(variants: dict[str, list[str]], num_utterances: dict[str, int]) -> None:
    """Refuse voice variants shared between splits, and a split with utterances but no voice."""
    used = [v for s in SPLITS for v in variants.get(s, [])]
    if len(used) != len(set(used)):
        raise ValueError("data.variants must be disjoint across train/val/test (held-out voices).")
    for s in SPLITS:
        if num_utterances.get(s, 0) > 0 and not variants.get(s):
            raise ValueError(f"data.variants.{s} is empty but data.num_utterances.{s} > 0.")


def spec_key(spec: Any, skip: tuple[str, ...] = (), **extra: Any) -> str:
    """Short hash of a dataclass spec, less its fields in ``skip``, and ``extra`` facts (an engine's revision)
    that name its cache file."""
    fields = {k: v for k, v in asdict(spec).items() if k not in skip}
    if clash := fields.keys() & extra.keys():
        raise ValueError(f"spec_key: {sorted(clash)} are the spec's own fields, not extra facts.")
    blob = json.dumps(fields | extra, sort_keys=True, default=list)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def uniform_int(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    """An integer drawn uniformly from the inclusive range ``lo_hi``."""
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def synthesize_batches(utterances: list[Utterance], *, batch: int, num_workers: int = 1, label: str = "speech",
                       progress: bool = True,
                       data_path: str | None = None) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """Yield ``(first index, engine sample rate, int16 waveforms)`` per batch of ``batch`` utterances,
    in completion order, with a Rich progress bar; ``data_path``: the eSpeak data folder (default the wheel's)."""
    cols = (TextColumn(f"[bold]synthesising {label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    starts = range(0, len(utterances), batch)
    with Progress(*cols, disable=not progress) as bar, tempfile.TemporaryDirectory() as tmp, \
            cf.ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:  # threads wait on subprocesses
        task = bar.add_task("synth", total=len(utterances))
        futures = {pool.submit(run_batch_in_subprocess, utterances[i: i + batch], f"{tmp}/{i}.npz", data_path): i
                   for i in starts}
        for fut in cf.as_completed(futures):
            sr, waves = fut.result()
            bar.advance(task, len(waves))
            yield futures[fut], sr, waves


def finish(wave: np.ndarray, sr_in: int, sr_out: int, rng: np.random.Generator, *,
           pad_seconds: tuple[float, float], snr_db: tuple[float, float],
           level: tuple[float, float] = (0.2, 0.9)) -> np.ndarray:
    """Resample (polyphase FIR), pad with silence before and after, scale the peak to a random ``level``,
    add white noise at a random SNR; returns int16 ``(T,)``."""
    g = math.gcd(sr_in, sr_out)
    x = resample_poly(wave.astype(np.float32) / 32768.0, sr_out // g, sr_in // g)
    pad = [int(rng.uniform(*pad_seconds) * sr_out) for _ in range(2)]
    x = np.pad(x, pad)
    peak = float(np.abs(x).max()) or 1.0
    x = x / peak * rng.uniform(*level)
    rms = float(np.sqrt(np.mean(x**2))) or 1e-3
    noise_rms = rms / 10 ** (rng.uniform(*snr_db) / 20)
    x = x + rng.normal(0.0, noise_rms, x.shape)
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
