"""CTC decoding: greedy, a built-in prefix beam search, and torchaudio's flashlight decoder.

All decoders take log-probabilities ``(B, N, V)`` with the blank at index 0 and valid lengths
``(B,)`` and return token-id lists (blanks and repeats removed). :func:`decode` picks one and maps
ids to text with the vocabulary.

With a lexicon (the words a task can contain, e.g. the ten digit words) the built-in beam search only
grows prefixes that spell lexicon words separated by single spaces, so a misheard "zfero" cannot come
out; the best complete hypothesis wins. Greedy decoding cannot honour a lexicon, so a lexicon
always means a beam search.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict

import numpy as np
from torch import Tensor

__all__ = ["LEXICON_MIN_BEAM", "Lexicon", "decode", "flashlight_available", "greedy_decode", "prefix_beam_search"]

NEG_INF = -math.inf
#: narrowest beam a lexicon search uses (greedy cannot step around a word the lexicon lacks)
LEXICON_MIN_BEAM = 8


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


def _logadd2(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` (written out for two and three terms: the search's inner loop)."""
    m = a if a > b else b
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _logadd3(a: float, b: float, c: float) -> float:
    m = max(a, b, c)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(math.exp(a - m) + math.exp(b - m) + math.exp(c - m))


class Lexicon:
    """Word spellings as token ids, and which tokens may follow a partly spelled word.

    The search keeps, per prefix, the word it is spelling (the tokens after its last space); what may
    come next depends only on that partial word, so it is looked up, not recomputed from the prefix.
    """

    def __init__(self, words: list[str], vocab: list[str], space: str = " ") -> None:
        index = {ch: i for i, ch in enumerate(vocab)}
        missing = sorted({ch for w in words for ch in w if ch not in index})
        if missing or space not in index:
            raise ValueError(f"the lexicon uses characters the model cannot emit: {missing or [space]}.")
        self.space = index[space]
        self.words = {tuple(index[ch] for ch in w) for w in words if w}
        self.prefixes = {w[:k] for w in self.words for k in range(1, len(w) + 1)}
        follows: dict[tuple[int, ...], set[int]] = defaultdict(set)
        for p in self.prefixes:
            follows[p[:-1]].add(p[-1])
        for w in self.words:
            follows[w].add(self.space)  # a whole word may end with a space (then the next word starts)
        self.follows = {p: frozenset(ts) for p, ts in follows.items()}

    def partial(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
        """The word ``prefix`` is spelling: its tokens after the last space."""
        cut = max((i for i, t in enumerate(prefix) if t == self.space), default=-1)
        return prefix[cut + 1:]

    def after(self, partial: tuple[int, ...], token: int) -> tuple[int, ...]:
        """The partial word once ``token`` is appended."""
        return () if token == self.space else partial + (token,)

    def allows(self, prefix: tuple[int, ...], token: int) -> bool:
        return token in self.follows.get(self.partial(prefix), ())

    def whole_words(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
        """``prefix`` without the word it is spelling and the space before it."""
        head = prefix[: len(prefix) - len(self.partial(prefix))]
        return head[:-1] if head else head

    def complete(self, prefix: tuple[int, ...]) -> bool:
        """Whole words and nothing after the last one (a trailing space is a different labelling)."""
        return not prefix or self.partial(prefix) in self.words


def _total(item: tuple[tuple[int, ...], tuple[float, float]]) -> float:
    """A beam entry's log probability: ending in blank or not."""
    return _logadd2(*item[1])


def _beam_one(lp: np.ndarray, beam_size: int, blank: int, prune: float, lexicon: Lexicon | None = None) -> list[int]:
    """Prefix beam search over ``lp`` (N, V); each prefix keeps (log p ending in blank, in non-blank)
    and, with a lexicon, the word it is spelling."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    spelling: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}  # prefix -> its partial word
    everything = range(lp.shape[1])
    for t in range(lp.shape[0]):
        row = lp[t]
        cand = np.flatnonzero(row >= row.max() + prune) if prune > NEG_INF else np.arange(len(row))
        if lexicon is not None and blank not in cand:  # a frame no word may take still passes as a blank
            cand = np.append(cand, blank)
        scores = [(c, float(row[c])) for c in cand.tolist()]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            last = prefix[-1] if prefix else None
            partial = spelling[prefix] if lexicon is not None else ()
            allowed = everything if lexicon is None else lexicon.follows.get(partial, ())
            for c, p in scores:
                if c == blank:
                    e = nxt[prefix]
                    e[0] = _logadd3(e[0], pb + p, pnb + p)
                    continue
                grows = c in allowed
                if c == last:  # a repeat needs a blank in between; otherwise it stays the same prefix
                    same = nxt[prefix]
                    same[1] = _logadd2(same[1], pnb + p)
                    if grows:
                        e = nxt[prefix + (c,)]
                        e[1] = _logadd2(e[1], pb + p)
                elif grows:
                    e = nxt[prefix + (c,)]
                    e[1] = _logadd3(e[1], pb + p, pnb + p)
                else:
                    continue
                if lexicon is not None and grows and prefix + (c,) not in spelling:
                    spelling[prefix + (c,)] = lexicon.after(partial, c)
        ranked = sorted(nxt.items(), key=_total, reverse=True)[:beam_size]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    done = [kv for kv in beams.items() if lexicon is None or lexicon.complete(kv[0])]
    if done:
        return list(max(done, key=_total)[0])
    # every survivor ends inside a word (a recording cut mid-word, a last word misheard): keep the best
    # one's whole words and drop the half word, rather than lose the whole utterance
    return list(lexicon.whole_words(max(beams.items(), key=_total)[0]))


@functools.lru_cache(maxsize=8)
def _lexicon(words: tuple[str, ...], vocab: tuple[str, ...]) -> Lexicon:
    """One :class:`Lexicon` per (words, vocabulary): decode runs per batch and per predict chunk."""
    return Lexicon(list(words), list(vocab))


def prefix_beam_search(log_probs: Tensor, lengths: Tensor, beam_size: int = 4, blank: int = 0,
                       prune: float = -10.0, lexicon: Lexicon | None = None) -> list[list[int]]:
    """CTC prefix beam search (no language model), optionally held to a :class:`Lexicon`. ``prune``:
    skip symbols whose log-prob is more than ``-prune`` below the frame's best (``-inf`` keeps all)."""
    lp = log_probs.float().cpu().numpy()
    return [_beam_one(lp[b, :n], beam_size, blank, prune, lexicon) for b, n in enumerate(lengths.tolist())]


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
           backend: str = "auto", lexicon: list[str] | None = None) -> list[str]:
    """Texts for a batch. ``beam_size=1``: greedy; otherwise beam search with ``backend`` =
    ``"builtin"``, ``"flashlight"`` (torchaudio) or ``"auto"`` (flashlight when installed).
    ``lexicon``: the only words the output may contain (built-in beam search, at least
    :data:`LEXICON_MIN_BEAM` wide)."""
    if lexicon:
        ids = prefix_beam_search(log_probs, lengths, max(beam_size, LEXICON_MIN_BEAM),
                                 lexicon=_lexicon(tuple(lexicon), tuple(vocab)))
    elif beam_size <= 1:
        ids = greedy_decode(log_probs, lengths)
    elif backend == "flashlight" or (backend == "auto" and flashlight_available() and vocab[1:2] == [" "]):
        ids = _flashlight(log_probs, lengths, vocab, beam_size)
    elif backend in ("auto", "builtin"):
        ids = prefix_beam_search(log_probs, lengths, beam_size)
    else:
        raise ValueError(f"unknown CTC decoder backend '{backend}' (auto, builtin or flashlight).")
    return [" ".join("".join(vocab[i] for i in seq).split()) for seq in ids]
