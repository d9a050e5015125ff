"""``mas-predict`` for speech checkpoints: transcribe (CTC) or classify (spoken commands) WAV/FLAC files at
any rate, mono or stereo.

Each recording is first trimmed to its voiced part (plus a short margin) and its peak scaled to the level of
the training clips (:func:`trim_and_level`); pauses inside it longer than :data:`MAX_PAUSE_SECONDS` are
shortened to that (:func:`shorten_pauses`), as the training utterances hold none longer. A recording is
transcribed whole up to ``chunk_seconds``: cutting a digit sequence at each of its short pauses handed the
model lone words it never saw alone (the spoken-digits recipe, four seeds, on engines not in training: SAM's
WER 0.124 cut, 0.083 whole; Pico's 0.204 and 0.165). Longer audio is cut in the middle of pauses (runs of
quiet 10 ms frames, an energy threshold between the file's noise floor and speech level) into as few pieces of
at most ``chunk_seconds`` as they allow, of about even length (:func:`segments`); a stretch with no pause is
cut at its quietest frames. The piece transcripts are joined with spaces. A bad file (missing, empty, corrupt,
not audio) gets one ``error:`` line and the others are still transcribed; silent audio gives an empty
transcript. The closing line reports the real-time factor (audio seconds per wall second). Transcripts also go
to ``<out_dir>/transcripts.jsonl``.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.train.errors import InputError
from core.train.inputs import each_readable, finish_inputs, input_files
from speech.data.audio import AUDIO_SUFFIXES, read_audio
from speech.decode import decode

__all__ = ["CUT_PAUSE_SECONDS", "MAX_PAUSE_SECONDS", "audio_paths", "classify_files", "quiet_frames", "segments",
           "shorten_pauses", "split_chunks", "transcribe_files", "transcribe_wave", "trim_and_level"]

SILENCE_PEAK = 1e-4
MAX_PAUSE_SECONDS = 0.3  # longest pause kept inside a recording (training utterances pause briefly)
CUT_PAUSE_SECONDS = 0.15  # shortest pause long audio is cut in (a stop closure inside a word is shorter)


def audio_paths(spec: Any) -> list[Path]:
    """Files named by ``input=`` (a file, a folder of audio files, or a list)."""
    return input_files(spec, AUDIO_SUFFIXES, "audio")


def split_chunks(wave: Tensor, sample_rate: int, chunk_seconds: float) -> list[Tensor]:
    """Cut ``wave`` (T,) into pieces of at most ``chunk_seconds``, each cut at the quietest 10 ms
    frame in the last quarter (at most 2 s) of its piece."""
    size = max(1, int(chunk_seconds * sample_rate))
    frame = max(1, sample_rate // 100)
    pieces, start = [], 0
    while len(wave) - start > size:
        search = min(2 * sample_rate, size // 4)
        lo = start + size - search
        win = wave[lo: start + size]
        n = len(win) // frame
        if n >= 2:
            energy = win[: n * frame].reshape(n, frame).pow(2).mean(1)
            cut = lo + int(energy.argmin()) * frame + frame // 2
        else:
            cut = start + size
        pieces.append(wave[start:cut])
        start = cut
    pieces.append(wave[start:])
    return pieces


def quiet_frames(wave: Tensor, sample_rate: int) -> list[bool]:
    """Per 10 ms frame, whether it is quiet: energy below a threshold between the file's noise floor
    (10th percentile of frame energy) and its speech level (95th percentile)."""
    frame = max(1, sample_rate // 100)
    n = len(wave) // frame
    if n < 3:
        return [False] * n
    db = 10 * torch.log10(wave[: n * frame].reshape(n, frame).pow(2).mean(1) + 1e-10)  # (n,) frame energy
    floor, loud = torch.quantile(db, 0.1), torch.quantile(db, 0.95)
    return (db < floor + max(6.0, 0.25 * float(loud - floor))).tolist()


def _quiet_runs(quiet: list[bool]) -> list[tuple[int, int]]:
    """``(start, end)`` frame ranges of the interior quiet runs (not touching either end)."""
    runs, start = [], None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if start > 0 and i < len(quiet):
                runs.append((start, i))
            start = None
    return runs


def shorten_pauses(wave: Tensor, sample_rate: int,
                   max_pause: float = MAX_PAUSE_SECONDS) -> tuple[Tensor, list[int]]:
    """``wave`` (T,) with every interior pause longer than ``max_pause`` seconds cut to its first and last
    ``max_pause / 2`` (the model hears the words as one utterance, not across seconds of room noise), and where
    each pause of at least :data:`CUT_PAUSE_SECONDS` now has its middle (sample offsets in the result, the
    places :func:`segments` may cut). The pauses are found once, on ``wave`` itself: with its long pauses
    shortened, a recording may hold too little quiet for :func:`quiet_frames`' noise floor to stay below its
    speech."""
    frame = max(1, sample_rate // 100)
    cap, need = max(1, round(max_pause * 100)), max(1, round(CUT_PAUSE_SECONDS * 100))
    keep = torch.ones(len(wave), dtype=torch.bool)
    middles = []
    for start, end in _quiet_runs(quiet_frames(wave, sample_rate)):
        if end - start > cap:
            keep[(start + cap // 2) * frame: (end - (cap - cap // 2)) * frame] = False
            middles.append((start + cap // 2) * frame)
        elif end - start >= need:
            middles.append((start + end) // 2 * frame)
    kept_before = torch.cat([torch.zeros(1, dtype=torch.long), keep.long().cumsum(0)])  # kept samples before i
    return wave[keep], [int(kept_before[m]) for m in middles]


def segments(wave: Tensor, sample_rate: int, chunk_seconds: float,
             max_pause: float = MAX_PAUSE_SECONDS) -> list[Tensor]:
    """``wave`` (T,) with its long pauses shortened (:func:`shorten_pauses`), in as few pieces of at most
    ``chunk_seconds`` as its pauses allow: whole when it fits, else cut in the middle of pauses, each cut
    the pause nearest an even share of what is left (no lone word trails a long recording); a stretch with
    no pause to cut in is cut at its quietest frames (:func:`split_chunks`)."""
    short, cuts = shorten_pauses(wave, sample_rate, max_pause)
    size = max(1, int(chunk_seconds * sample_rate))
    bounds = [0]
    while len(short) - bounds[-1] > size:
        start, left = bounds[-1], len(short) - bounds[-1]
        target = start + left / math.ceil(left / size)
        options = [c for c in cuts if start < c <= start + size]
        if not options:
            break
        bounds.append(min(options, key=lambda c: abs(c - target)))
    bounds.append(len(short))
    return [c for a, b in itertools.pairwise(bounds) for c in split_chunks(short[a:b], sample_rate, chunk_seconds)]


def trim_and_level(wave: Tensor, sample_rate: int, *, margin: float = 0.15, peak: float = 0.55) -> Tensor:
    """Voice-activity trimming and loudness normalisation, so a recording looks like a training clip:
    leading and trailing quiet frames cut down to ``margin`` seconds, the peak scaled to ``peak``
    (the middle of the embedded clips' 0.2-0.9). Silence (peak under :data:`SILENCE_PEAK`) is returned as is."""
    top = float(wave.abs().max()) if len(wave) else 0.0
    if top < SILENCE_PEAK:
        return wave
    frame = max(1, sample_rate // 100)
    loud = [i for i, q in enumerate(quiet_frames(wave, sample_rate)) if not q]
    if loud:
        keep = int(margin * sample_rate)
        wave = wave[max(0, loud[0] * frame - keep): (loud[-1] + 1) * frame + keep]
    return wave * (peak / max(float(wave.abs().max()), SILENCE_PEAK))


@torch.no_grad()
def transcribe_wave(module, wave: Tensor, *, chunk_seconds: float = 20.0, beam_size: int = 1,
                    batch: int = 8) -> str:
    """Transcript of one waveform at the model's rate: long pauses shortened, cut in pieces only when longer
    than ``chunk_seconds`` (:func:`segments`)."""
    model = module.model
    sr = model.sample_rate
    device = next(model.parameters()).device
    min_len = max(model.frontend.mel.n_fft, sr // 10)  # the STFT needs a few windows
    pieces = [p for p in segments(wave, sr, chunk_seconds) if len(p)]
    texts = []
    for i in range(0, len(pieces), batch):
        group = pieces[i: i + batch]
        lens = torch.tensor([max(len(p), min_len) for p in group])
        x = torch.zeros(len(group), int(lens.max()))
        for j, p in enumerate(group):
            x[j, : len(p)] = p
        log_probs, out_lens = model(x.to(device), lens.to(device))
        texts += decode(log_probs, out_lens, model.vocab, beam_size=beam_size,
                        backend=getattr(module, "decoder", "auto"), lexicon=getattr(module, "lexicon", None))
    return " ".join(t for t in texts if t)


def _out(request: dict, out_dir: str) -> Path | None:
    return Path(request.get("out_dir") or out_dir) if out_dir else None


def transcribe_files(*, module, datamodule, request: dict, out_dir: str) -> list[dict]:
    """Print ``<file>: <transcript>`` for each input; returns the records."""
    paths = audio_paths(request.get("input"))
    chunk = float(request.get("chunk_seconds") or 20.0)
    if chunk <= 0:
        raise InputError(f"chunk_seconds={chunk} must be positive.")
    beam = max(1, int(request.get("beam_size") or 1))
    module = module.to(request.get("device") or "cpu").eval()
    sr = module.model.sample_rate
    results, audio_s, t0 = [], 0.0, time.perf_counter()
    for p, wave in each_readable(paths, lambda f: read_audio(f, sr), results):
        audio_s += len(wave) / sr
        if float(wave.abs().max()) < SILENCE_PEAK:
            text, note = "", " (silent audio: no speech)"
        else:
            voiced = trim_and_level(wave, sr)
            text, note = transcribe_wave(module, voiced, chunk_seconds=chunk, beam_size=beam), ""
        print(f"{p}: {text}{note}", flush=True)
        results.append({"file": str(p), "text": text, "seconds": round(len(wave) / sr, 3)})
    wall = time.perf_counter() - t0
    rtf = audio_s / max(wall, 1e-9)
    print(f"transcribed {audio_s:.1f} s of audio in {wall:.2f} s: {rtf:.1f}x real time "
          f"(beam_size={beam}, device={request.get('device') or 'cpu'})", flush=True)
    finish_inputs(results, _out(request, out_dir), "transcripts.jsonl")
    return results


@torch.no_grad()
def classify_files(*, module, datamodule, request: dict, out_dir: str) -> list[dict]:
    """Print the top-k labels with probabilities of each clip: a file longer than the training clips keeps
    its loudest clip-length window, a shorter one is centred in silence (:func:`speech.data.commands.fit_clip`)."""
    from speech.data.commands import fit_clip

    paths = audio_paths(request.get("input"))
    module = module.to(request.get("device") or "cpu").eval()
    model, classes = module.model, list(datamodule.classes)
    samples = int(round(datamodule.clip_seconds * model.sample_rate))
    k = max(1, min(int(request.get("top_k") or 3), len(classes)))
    results: list[dict] = []
    for p, wave in each_readable(paths, lambda f: read_audio(f, model.sample_rate), results):
        x = fit_clip(trim_and_level(wave, model.sample_rate), samples)[None].to(next(model.parameters()).device)
        prob = model(x, torch.tensor([samples], device=x.device)).float().softmax(-1)[0]
        top = prob.topk(k)
        preds = [(classes[int(i)], float(v)) for v, i in zip(top.values, top.indices)]
        print(f"{p}: " + ", ".join(f"{c} {v:.3f}" for c, v in preds), flush=True)
        results.append({"file": str(p), "top": preds})
    finish_inputs(results, _out(request, out_dir), "labels.jsonl")
    return results
