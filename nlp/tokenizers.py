"""Tokenizers that travel inside checkpoints: characters (embedded corpora), SentencePiece (real text).

Both share ids ``0 <pad>``, ``1 <unk>``, ``2 <s>``, ``3 </s>`` and the methods ``encode(text) -> list[int]``,
``decode(ids) -> str``, ``state_dict()`` and ``from_state(state)`` (used by the datamodules'
``state_dict``/``load_state_dict``, which Lightning stores in the checkpoint).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import torch

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "CharTokenizer", "SentencePieceTokenizer",
           "Tokenizer", "tokenizer_from_state"]

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


class CharTokenizer:
    """One token per character; characters unseen when the vocabulary was built map to ``<unk>``."""

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        self.itos = list(SPECIALS) + sorted(set(chars) - set(SPECIALS))
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def fit(cls, texts: Iterable[str]) -> CharTokenizer:
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(chars)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, UNK) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append("\ufffd" if i == UNK else self.itos[i])
        return "".join(out)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "chars": "".join(self.itos[len(SPECIALS):])}


class SentencePieceTokenizer:
    """SentencePiece unigram/BPE model; trained on the training texts when no model file is given."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self.proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.proto)

    @classmethod
    def fit(cls, texts: Iterable[str], *, vocab_size: int = 8000, model_type: str = "unigram",
            character_coverage: float = 1.0) -> SentencePieceTokenizer:
        """Train on ``texts``; the vocabulary shrinks to what the text supports (tiny corpora)."""
        import sentencepiece as spm

        lines = [t for t in texts if t.strip()]
        if not lines:
            raise ValueError("cannot train a SentencePiece model on an empty training split.")
        common = dict(model_type=model_type, character_coverage=character_coverage, pad_id=PAD, unk_id=UNK,
                      bos_id=BOS, eos_id=EOS, hard_vocab_limit=False, minloglevel=2,
                      num_threads=1)
        buf = io.BytesIO()  # hard_vocab_limit=False: tiny corpora get the vocabulary they support
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
                                       **common)
        return cls(buf.getvalue())

    @classmethod
    def load(cls, path: str) -> SentencePieceTokenizer:
        with open(path, "rb") as f:
            return cls(f.read())

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.proto)

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if EOS in ids:
            ids = ids[: ids.index(EOS)]
        return self.sp.decode([i for i in ids if i not in (PAD, BOS)])

    def state_dict(self) -> dict:
        # a uint8 tensor: checkpoints are read with torch.load(weights_only=True)
        return {"kind": self.kind, "proto": torch.frombuffer(bytearray(self.proto), dtype=torch.uint8).clone()}


Tokenizer = CharTokenizer | SentencePieceTokenizer


def tokenizer_from_state(state: dict) -> Tokenizer:
    """Rebuild a tokenizer from its ``state_dict()``."""
    if state["kind"] == "char":
        return CharTokenizer(state["chars"])
    if state["kind"] == "sentencepiece":
        return SentencePieceTokenizer(bytes(state["proto"].numpy().tobytes()))
    raise ValueError(f"unknown tokenizer kind {state['kind']!r}.")
