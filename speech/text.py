"""Character vocabulary for CTC: blank, space, apostrophe and the 26 letters."""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = ["BLANK", "CharTokenizer", "normalize_text"]

BLANK = "<b>"
DEFAULT_CHARS = " '" + "abcdefghijklmnopqrstuvwxyz"


def normalize_text(text: str) -> str:
    """Lower case, keep letters/apostrophes, collapse everything else to single spaces."""
    return re.sub(r"[^a-z']+", " ", text.lower()).strip()


class CharTokenizer:
    """Index 0 is the CTC blank; the rest are characters. Travels in checkpoints via :meth:`state_dict`."""

    def __init__(self, chars: str = DEFAULT_CHARS) -> None:
        self.vocab = [BLANK, *chars]
        self.index = {c: i for i, c in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> Tensor:
        """Normalised text -> ids ``(L,)`` (characters outside the vocabulary are dropped)."""
        return torch.tensor([self.index[c] for c in normalize_text(text) if c in self.index], dtype=torch.long)

    def decode(self, ids: list[int]) -> str:
        """Ids (blanks and repeats already removed) -> text."""
        return "".join(self.vocab[i] for i in ids if i != 0).strip()

    def state_dict(self) -> dict:
        return {"chars": "".join(self.vocab[1:])}

    @classmethod
    def from_state(cls, state: dict) -> "CharTokenizer":
        return cls(state["chars"])
