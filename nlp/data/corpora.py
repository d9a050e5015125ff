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

__all__ = ["COMPARE_CLASSES", "compare_corpus", "number_words", "sample_numbers", "translation_corpus"]

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


def _near(rng: np.random.RandomState, a: int, max_number: int) -> int:
    """``a`` with one decimal digit changed (hard pairs: the same words up to one place)."""
    s = list(str(a))
    i = rng.randint(len(s))
    choices = [c for c in "0123456789" if c != s[i] and not (i == 0 and c == "0" and len(s) > 1)]
    s[i] = choices[rng.randint(len(choices))]
    b = int("".join(s))
    return b if b <= max_number else a


def compare_corpus(size: int, *, langs: tuple[str, ...] = ("en", "de", "fr", "es"), max_number: int = 9999,
                   near_fraction: float = 0.5, seed: int = 0) -> dict[str, list]:
    """``size`` pairs ``"<a> | <b>"`` in one language each; label 0 if ``a > b`` else 1 (no ties).

    A fraction ``near_fraction`` of pairs differ in one digit only, so that the model must read whole
    phrases, not just the leading magnitude word.
    """
    rng = np.random.RandomState(seed)
    texts, labels, lang_of = [], [], []
    with Progress(transient=True) as bar:
        job = bar.add_task("building number-comparison corpus", total=size)
        while len(texts) < size:
            a = int(sample_numbers(rng, 1, max_number)[0])
            b = _near(rng, a, max_number) if rng.random_sample() < near_fraction else int(
                sample_numbers(rng, 1, max_number)[0])
            if a == b:
                continue
            lang = langs[rng.randint(len(langs))]
            texts.append(number_words(a, lang) + SEPARATOR + number_words(b, lang))
            labels.append(0 if a > b else 1)
            lang_of.append(lang)
            bar.advance(job)
    return {"text": texts, "label": labels, "lang": lang_of}


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
