"""How people type the phrases that num2words writes: the test-time variants of the embedded text corpora.

num2words writes "one hundred and twenty-seven"; a person may type "One Hundred Twenty Seven",
"ONE HUNDRED AND TWENTY-SEVEN" or "one hundred twenty seven". Each variant here rewrites one phrase
that way, so a test split can report accuracy per variant (``test/acc_capitals``...). The text
datamodules' ``normalize`` steps (:data:`core.train.tokenizers.NORMALIZERS`) are what make a model
indifferent to them; the variants measure whether they do.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

__all__ = ["TYPING_VARIANTS", "typed"]


def _drop_and(s: str) -> str:
    return " ".join(re.sub(r"\band\b", " ", s).split())


def _mixed(s: str, rng: np.random.RandomState) -> str:
    """Each of the other rewrites with probability 1/2 (a capitalised first letter instead of title case
    half the time): how one person types, not one rule."""
    if rng.random_sample() < 0.5:
        s = _drop_and(s)
    if rng.random_sample() < 0.5:
        s = s.replace("-", " ")
    if rng.random_sample() < 0.5:
        s = s.replace(",", "")
    case = rng.randint(4)
    return [s, s.upper(), s.title(), s[:1].upper() + s[1:]][case]


TYPING_VARIANTS: dict[str, Callable[[str, np.random.RandomState], str]] = {
    "capitals": lambda s, rng: s.upper(),
    "title_case": lambda s, rng: s.title(),
    "no_and": lambda s, rng: _drop_and(s),
    "spaced_hyphens": lambda s, rng: s.replace("-", " "),
    "no_commas": lambda s, rng: s.replace(",", ""),
    "mixed": _mixed,
}


def typed(text: str, variant: str, rng: np.random.RandomState, separator: str | None = None) -> str:
    """``text`` as typed in ``variant``; with ``separator`` each side of it is rewritten on its own."""
    rewrite = TYPING_VARIANTS[variant]
    if separator is None:
        return rewrite(text, rng)
    return separator.join(rewrite(part, rng) for part in text.split(separator))
