"""Text tokenizers that travel inside checkpoints: characters (embedded corpora), SentencePiece (real text).

Both follow :class:`core.train.protocols.Tokenizer` and share ids ``0 <pad>``, ``1 <unk>``, ``2 <s>``,
``3 </s>``; :func:`tokenizer_from_state` rebuilds either from its ``state_dict()`` (the datamodules'
``state_dict``/``load_state_dict``, which Lightning stores in the checkpoint).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import torch

from core.train.tokenizers import TEXT_SPECIALS, CharTokenizer

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "CharTokenizer", "SentencePieceTokenizer",
           "Tokenizer", "tokenizer_from_state"]

SPECIALS = list(TEXT_SPECIALS)
PAD, UNK, BOS, EOS = range(len(SPECIALS))


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

    def piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def state_dict(self) -> dict:
        # a uint8 tensor: checkpoints are read with torch.load(weights_only=True)
        return {"kind": self.kind, "proto": torch.frombuffer(bytearray(self.proto), dtype=torch.uint8).clone()}


Tokenizer = CharTokenizer | SentencePieceTokenizer


def tokenizer_from_state(state: dict) -> Tokenizer:
    """Rebuild a tokenizer from its ``state_dict()``."""
    if state["kind"] == "char":
        return CharTokenizer.from_state(state)
    if state["kind"] == "sentencepiece":
        return SentencePieceTokenizer(bytes(state["proto"].numpy().tobytes()))
    raise ValueError(f"unknown tokenizer kind {state['kind']!r}.")
