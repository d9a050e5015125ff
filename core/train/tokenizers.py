"""The character tokenizer every domain shares (text classification, translation, CTC speech).

``CharTokenizer(chars, specials=..., normalize=...)``: one id per character after normalisation, the
special symbols first. Two behaviours come from the specials, not from flags:

* a ``<unk>`` special catches characters outside the vocabulary; without one they are dropped
  (CTC transcripts keep only what the recogniser can spell);
* ``decode`` stops at ``</s>`` and skips every other special except ``<unk>``, shown as U+FFFD.

``normalize`` is a list of named steps (:data:`NORMALIZERS`) applied before encoding, stored in the
checkpoint with the vocabulary so ``mas-predict`` treats typed input as training did.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

__all__ = ["NORMALIZERS", "CharTokenizer", "normalize", "unknown_steps"]

PAD, UNK, BOS, EOS, BLANK = "<pad>", "<unk>", "<s>", "</s>", "<b>"
TEXT_SPECIALS = (PAD, UNK, BOS, EOS)
CTC_SPECIALS = (BLANK,)

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "nfc": lambda s: unicodedata.normalize("NFC", s),
    "letters": lambda s: re.sub(r"[^a-z']+", " ", s),  # keep a-z and apostrophes (after "lower")
    "no_commas": lambda s: s.replace(",", " "),  # "one thousand, two" and "one thousand two" alike
    "hyphen_space": lambda s: s.replace("-", " "),  # "twenty-one" and "twenty one" alike
    "drop_and": lambda s: re.sub(r"\band\b", " ", s, flags=re.IGNORECASE),  # "hundred and five" = "hundred five"
    "spaces": lambda s: " ".join(s.split()),  # collapse runs of white space, strip the ends
}


def unknown_steps(steps: Sequence[str]) -> list[str]:
    """The names in ``steps`` that are not normalisation steps (:data:`NORMALIZERS`)."""
    return [s for s in steps if s not in NORMALIZERS]


def normalize(text: str, steps: Sequence[str]) -> str:
    """``text`` after the named steps, in order."""
    for step in steps:
        text = NORMALIZERS[step](text)
    return text


class CharTokenizer:
    """One token per character; see the module docstring."""

    kind = "char"

    def __init__(self, chars: Iterable[str], *, specials: Sequence[str] = TEXT_SPECIALS,
                 normalize: Sequence[str] = ()) -> None:
        unknown = unknown_steps(normalize)
        if unknown:
            raise ValueError(f"unknown normalisation step(s) {unknown}; choose from {sorted(NORMALIZERS)}.")
        self.specials, self.steps = list(specials), list(normalize)
        self.itos = self.specials + sorted(set(chars) - set(self.specials))
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.unk = self.stoi.get(UNK)
        self.eos = self.stoi.get(EOS)
        self._skip = {self.stoi[s] for s in self.specials if s not in (UNK, EOS)}

    @classmethod
    def fit(cls, texts: Iterable[str], **kw) -> CharTokenizer:
        """The vocabulary of ``texts`` (after normalisation)."""
        steps = kw.get("normalize", ())
        chars: set[str] = set()
        for t in texts:
            chars.update(normalize(t, steps))
        return cls(chars, **kw)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def normalize(self, text: str) -> str:
        return normalize(text, self.steps)

    def encode(self, text: str) -> list[int]:
        ids = (self.stoi.get(c, self.unk) for c in self.normalize(text))
        return [i for i in ids if i is not None]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i in self._skip:
                continue
            out.append("\ufffd" if i == self.unk else self.itos[i])
        return "".join(out)

    def piece(self, i: int) -> str:
        """Display string of id ``i`` (a visible mark for the space)."""
        s = self.itos[int(i)]
        return "\u2423" if s == " " else s

    def state_dict(self) -> dict:
        return {"kind": self.kind, "chars": "".join(self.itos[len(self.specials):]), "specials": list(self.specials),
                "normalize": list(self.steps)}

    @classmethod
    def from_state(cls, state: dict, **defaults) -> CharTokenizer:
        """Rebuild from :meth:`state_dict`; ``defaults`` fill keys that older checkpoints lack."""
        full = {**defaults, **state}
        return cls(full["chars"], specials=full.get("specials", TEXT_SPECIALS), normalize=full.get("normalize", ()))
