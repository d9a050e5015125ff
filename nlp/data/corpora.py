"""Embedded text corpora built from language data shipped in ``num2words`` (CLDR-style number words).

* :func:`compare_corpus`: "which of two number phrases is larger?" in several languages. Swapping the
  two phrases flips the label, so any bag-of-tokens model is at chance: only word order tells.
* :func:`translation_corpus`: number words in one language to another (English to German needs
  re-ordering: "twenty-one" -> "einundzwanzig"), split by held-out numbers.

Everything is deterministic in ``seed``; the datamodules cache the result on disk.
"""

from __future__ import annotations

import numpy as np
from num2words import num2words
from rich.progress import Progress

__all__ = ["COMPARE_CLASSES", "PAIR_KINDS", "compare_corpus", "number_words", "sample_numbers", "translation_corpus"]

COMPARE_CLASSES = ["first", "second"]  # which phrase names the larger number
SEPARATOR = " | "


def number_words(n: int, lang: str) -> str:
    """Cardinal ``n`` written out in ``lang`` (num2words' language data)."""
    return num2words(int(n), lang=lang)


def sample_numbers(rng: np.random.RandomState, size: int, max_number: int) -> np.ndarray:
    """Numbers with a uniformly drawn digit count, then uniform within it (short and long alike)."""
    digits = len(str(max_number))
    d = rng.randint(1, digits + 1, size=size)
    lo = np.where(d == 1, 0, 10 ** (d - 1))
    hi = np.minimum(10**d - 1, max_number)
    return (lo + (rng.random_sample(size) * (hi - lo + 1)).astype(np.int64)).astype(np.int64)


PAIR_KINDS = ("easy", "one_digit", "close")


def _one_digit_changed(rng: np.random.RandomState, a: int, max_number: int) -> int:
    """``a`` with one decimal digit changed: the same words up to one place."""
    s = list(str(a))
    i = rng.randint(len(s))
    choices = [c for c in "0123456789" if c != s[i] and not (i == 0 and c == "0" and len(s) > 1)]
    s[i] = choices[rng.randint(len(choices))]
    b = int("".join(s))
    return b if b <= max_number else a


def _close_pair(rng: np.random.RandomState, max_number: int) -> tuple[int, int]:
    """Two numbers at most 30 apart (log-uniform: a gap of 1-5 as often as one of 6-30); half of them
    straddle a round ten or hundred (199 vs 203), where the tens and hundreds words change while the
    magnitudes stay close."""
    if rng.random_sample() < 0.5:
        step = 100 if rng.random_sample() < 0.5 and max_number >= 100 else 10
        edge = step * rng.randint(1, max(2, max_number // step + 1))
        a, b = edge - 1 - rng.randint(min(step, 15)), edge + rng.randint(min(step, 15))
    else:
        a = _number(rng, max_number)
        b = a + int(rng.choice([-1, 1])) * int(np.exp(rng.uniform(0.0, np.log(31.0))))  # 1-30, small ones most
    a, b = (a, b) if rng.random_sample() < 0.5 else (b, a)
    return min(max(a, 0), max_number), min(max(b, 0), max_number)


def _number(rng: np.random.RandomState, max_number: int) -> int:
    """Half the time uniform over the digit counts (short numbers are seen), half uniform over the values
    (most numbers people compare have all the digits, and those comparisons are the hard ones)."""
    if rng.random_sample() < 0.5:
        return int(sample_numbers(rng, 1, max_number)[0])
    return int(rng.randint(0, max_number + 1))


def _pair(rng: np.random.RandomState, kind: str, max_number: int) -> tuple[int, int]:
    if kind == "close":
        return _close_pair(rng, max_number)
    a = _number(rng, max_number)
    if kind == "one_digit":
        return a, _one_digit_changed(rng, a, max_number)
    return a, _number(rng, max_number)


def compare_corpus(size: int, *, langs: tuple[str, ...] = ("en", "de", "fr", "es"), max_number: int = 9999,
                   pair_kinds: dict[str, float] | None = None, seed: int = 0) -> dict[str, list]:
    """``size`` pairs ``"<a> | <b>"`` in one language each; label 0 if ``a > b`` else 1 (no ties).

    ``pair_kinds`` gives the share of each kind of pair (:data:`PAIR_KINDS`, equal shares by default):
    ``easy`` two independent numbers (mostly decided by magnitude), ``one_digit`` one digit changed
    (the same words up to one place), ``close`` at most 30 apart, often across a ten or a hundred.
    Each pair's kind is returned under ``"kind"`` so that the test split can report accuracy per kind.
    """
    shares = dict(pair_kinds or {k: 1.0 for k in PAIR_KINDS})
    unknown = sorted(set(shares) - set(PAIR_KINDS))
    if unknown or not shares or min(shares.values()) < 0 or sum(shares.values()) <= 0:
        raise ValueError(f"pair_kinds must give non-negative shares of {list(PAIR_KINDS)}, not {shares}.")
    kinds = list(shares)
    p = np.array([shares[k] for k in kinds], dtype=float) / sum(shares.values())
    rng = np.random.RandomState(seed)
    texts, labels, lang_of, kind_of = [], [], [], []
    with Progress(transient=True) as bar:
        job = bar.add_task("building number-comparison corpus", total=size)
        while len(texts) < size:
            kind = kinds[rng.choice(len(kinds), p=p)]
            a, b = _pair(rng, kind, max_number)
            if a == b:
                continue
            lang = langs[rng.randint(len(langs))]
            texts.append(number_words(a, lang) + SEPARATOR + number_words(b, lang))
            labels.append(0 if a > b else 1)
            lang_of.append(lang)
            kind_of.append(kind)
            bar.advance(job)
    return {"text": texts, "label": labels, "lang": lang_of, "kind": kind_of}


def translation_corpus(sizes: dict[str, int], *, src_lang: str = "en", tgt_lang: str = "de",
                       max_number: int = 999_999, seed: int = 0) -> dict[str, dict[str, list[str]]]:
    """Disjoint sets of numbers per split (test numbers are never seen in training)."""
    rng = np.random.RandomState(seed)
    total = sum(sizes.values())
    if total > max_number + 1:
        raise ValueError(f"cannot draw {total} distinct numbers up to {max_number}.")
    seen: set[int] = set()
    numbers: list[int] = []
    while len(numbers) < total:
        for n in sample_numbers(rng, total, max_number).tolist():
            if n not in seen and len(numbers) < total:
                seen.add(n)
                numbers.append(n)
    out, start = {}, 0
    with Progress(transient=True) as bar:
        job = bar.add_task(f"building {src_lang}->{tgt_lang} number corpus", total=total)
        for split, n in sizes.items():
            nums = numbers[start:start + n]
            start += n
            out[split] = {"src": [number_words(x, src_lang) for x in nums],
                          "tgt": [number_words(x, tgt_lang) for x in nums],
                          "number": [str(x) for x in nums]}
            bar.advance(job, n)
    return out
