"""CTC decoding: greedy, a built-in prefix beam search, and torchaudio's flashlight decoder.

All decoders take log-probabilities ``(B, N, V)`` with the blank at index 0 and valid lengths
``(B,)`` and return token-id lists (blanks and repeats removed). :func:`decode` picks one and maps
ids to text with the vocabulary.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from torch import Tensor

__all__ = ["decode", "flashlight_available", "greedy_decode", "prefix_beam_search"]

NEG_INF = -math.inf


def greedy_decode(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = log_probs.argmax(-1).cpu().numpy()  # (B, N)
    out = []
    for b, n in enumerate(lengths.tolist()):
        path = best[b, :n]
        keep = np.ones(len(path), dtype=bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(t) for t in path[keep] if t != blank])
    return out


def _logadd(*xs: float) -> float:
    m = max(xs)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _beam_one(lp: np.ndarray, beam_size: int, blank: int, prune: float) -> list[int]:
    """Prefix beam search over ``lp`` (N, V); each prefix keeps (log p ending in blank, in non-blank)."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t in range(lp.shape[0]):
        row = lp[t]
        cand = np.flatnonzero(row >= row.max() + prune) if prune > NEG_INF else np.arange(len(row))
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            for c in cand.tolist():
                p = float(row[c])
                if c == blank:
                    e = nxt[prefix]
                    e[0] = _logadd(e[0], pb + p, pnb + p)
                    continue
                last = prefix[-1] if prefix else None
                ext = prefix + (c,)
                e = nxt[ext]
                if c == last:  # a repeat needs a blank in between; otherwise it stays the same prefix
                    e[1] = _logadd(e[1], pb + p)
                    same = nxt[prefix]
                    same[1] = _logadd(same[1], pnb + p)
                else:
                    e[1] = _logadd(e[1], pb + p, pnb + p)
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]), reverse=True)[:beam_size]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    return list(max(beams.items(), key=lambda kv: _logadd(*kv[1]))[0])


def prefix_beam_search(log_probs: Tensor, lengths: Tensor, beam_size: int = 4, blank: int = 0,
                       prune: float = -10.0) -> list[list[int]]:
    """CTC prefix beam search (no language model). ``prune``: skip symbols whose log-prob is more
    than ``-prune`` below the frame's best (``-inf`` keeps all)."""
    lp = log_probs.float().cpu().numpy()
    return [_beam_one(lp[b, :n], beam_size, blank, prune) for b, n in enumerate(lengths.tolist())]


def flashlight_available() -> bool:
    """True when torchaudio's ``ctc_decoder`` can run (the optional ``flashlight-text`` package)."""
    try:
        import flashlight.lib.text  # noqa: F401
    except ImportError:
        return False
    return True


def _flashlight(log_probs: Tensor, lengths: Tensor, vocab: list[str], beam_size: int) -> list[list[int]]:
    from torchaudio.models.decoder import ctc_decoder

    if vocab[1:2] != [" "]:
        raise ValueError("the flashlight decoder needs the space at vocabulary index 1 (the word separator).")
    tokens = ["-", "|", *vocab[2:]]  # blank, word separator (our space), characters
    dec = ctc_decoder(lexicon=None, tokens=tokens, lm=None, beam_size=beam_size, blank_token="-", sil_token="|", log_add=True,
                      unk_word="<unk>")
    hyps = dec(log_probs.float().cpu().contiguous(), lengths.cpu().int())
    return [[int(t) for t in h[0].tokens.tolist() if int(t) != 0] for h in hyps]


def decode(log_probs: Tensor, lengths: Tensor, vocab: list[str], *, beam_size: int = 1,
           backend: str = "auto") -> list[str]:
    """Texts for a batch. ``beam_size=1``: greedy; otherwise beam search with ``backend`` =
    ``"builtin"``, ``"flashlight"`` (torchaudio) or ``"auto"`` (flashlight when installed)."""
    if beam_size <= 1:
        ids = greedy_decode(log_probs, lengths)
    elif backend == "flashlight" or (backend == "auto" and flashlight_available() and vocab[1:2] == [" "]):
        ids = _flashlight(log_probs, lengths, vocab, beam_size)
    elif backend in ("auto", "builtin"):
        ids = prefix_beam_search(log_probs, lengths, beam_size)
    else:
        raise ValueError(f"unknown CTC decoder backend '{backend}' (auto, builtin or flashlight).")
    return [" ".join("".join(vocab[i] for i in seq).split()) for seq in ids]
