"""Is this digit string in order? The embedded text task for length extrapolation.

A text is a string of digits (``"0113579"``, one character = one token); it is ``sorted`` when no
digit is smaller than the one before it. Half of the texts are sorted; the other half are a sorted
string with one local fault, in equal shares:

* ``swap``: two neighbouring, different digits exchanged (the same digits as a sorted string, so a
  bag of tokens cannot tell them apart);
* ``changed``: one digit replaced by one that no longer fits between its neighbours.

Either way one position decides the label, and only the order of the tokens shows it: without a
positional encoding a model is at chance. Training and validation texts have ``train_lengths``
digits (inclusive); the test split at ``size_ratio = r`` has lengths in ``((r - 1/2) L, r L]``
(``L`` the longest training length; :func:`core.train.data.lengths_at_ratio`); ``r = 1`` is the
training distribution itself and ``r = 4`` texts are up to four times longer than any seen in
training. The model's learned tables (``max_len``) cover the training lengths only; longer test
texts are never truncated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.train.data import lengths_at_ratio
from core.train.errors import InputError
from nlp.data.modules import TextClassificationDataModule, _Encoder

__all__ = ["DigitOrderDataModule", "ORDER_CLASSES", "ORDER_KINDS", "order_texts"]

ORDER_CLASSES = ("unsorted", "sorted")
ORDER_KINDS = ("sorted", "swap", "changed")


def _one(rng: np.random.RandomState, n: int, kind: str) -> str:
    while True:
        d = np.sort(rng.randint(0, 10, n))
        if kind == "swap":
            spots = np.flatnonzero(d[1:] != d[:-1])
            if not len(spots):
                continue
            i = int(spots[rng.randint(len(spots))])
            d[i], d[i + 1] = d[i + 1], d[i]
        elif kind == "changed":
            i = rng.randint(n)
            lo, hi = (d[i - 1] if i else 0), (d[i + 1] if i + 1 < n else 9)
            wrong = [v for v in range(10) if v < lo or v > hi]
            if not wrong:
                continue
            d[i] = wrong[rng.randint(len(wrong))]
        return "".join(str(int(v)) for v in d)


def order_texts(size: int, lengths: tuple[int, int], seed: int) -> dict[str, list]:
    """``size`` texts with lengths uniform in ``lengths`` (inclusive): ``text``, ``label`` (index into
    :data:`ORDER_CLASSES`) and ``kind`` (:data:`ORDER_KINDS`); half sorted, a quarter of each fault."""
    rng = np.random.RandomState(seed)
    kinds = [ORDER_KINDS[0] if i % 2 == 0 else ORDER_KINDS[1 + (i // 2) % 2] for i in range(size)]
    texts = [_one(rng, int(rng.randint(lengths[0], lengths[1] + 1)), k) for k in kinds]
    return {"text": texts, "label": [int(k == "sorted") for k in kinds], "kind": kinds}


class DigitOrderDataModule(TextClassificationDataModule):
    """Embedded digit-order texts (module docstring); ``size_ratio`` sets the test lengths.

    Args:
        train_lengths: inclusive digit counts of the training and validation texts.
        size_ratio: the test split's lengths relative to the longest training length.
        sizes: ``{train, val, test}`` numbers of texts.
    """

    EMBEDDED = "digit_order"

    def __init__(self, *, cache_dir: str, train_lengths: Sequence[int] = (4, 8), size_ratio: float = 1.0,
                 sizes: dict[str, int] | None = None, batch_size: int = 64, num_workers: int = 0) -> None:
        lo, hi = (int(v) for v in train_lengths)
        if not 2 <= lo <= hi:
            raise InputError(f"data.train_lengths={list(train_lengths)} must be two lengths 2 <= shortest <= longest.")
        if not size_ratio > 0:
            raise InputError(f"data.size_ratio={size_ratio} must be positive.")
        super().__init__(cache_dir=cache_dir, corpus=self.EMBEDDED, tokenizer="char", max_len=hi,
                         batch_size=batch_size, num_workers=num_workers)
        self.train_lengths, self.size_ratio = (lo, hi), float(size_ratio)
        self.sizes = {"train": 20000, "val": 1000, "test": 1000, **(sizes or {})}
        self.classes = list(ORDER_CLASSES)
        self.test_subsets = list(ORDER_KINDS)  # test/acc_sorted, test/acc_swap, test/acc_changed

    def prepare_data(self) -> None:  # texts are drawn in memory in well under a second
        pass

    def _raw_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        lengths = {"train": self.train_lengths, "val": self.train_lengths,
                   "test": self.train_lengths if self.size_ratio == 1.0 else lengths_at_ratio(self.train_lengths,
                                                                                               self.size_ratio)}
        splits = {}
        for k, split in enumerate(("train", "val", "test")):
            data = order_texts(self.sizes[split], lengths[split], seed=k)
            labels = [ORDER_CLASSES[y] for y in data["label"]]
            splits[split] = (data["text"], labels)
            if split == "test":
                for kind in ORDER_KINDS:
                    ix = [i for i, v in enumerate(data["kind"]) if v == kind]
                    splits[f"test_{kind}"] = ([data["text"][i] for i in ix], [labels[i] for i in ix])
        return splits

    def encoder(self) -> _Encoder:
        if self.tokenizer is None:
            raise RuntimeError("the tokenizer is not built yet (call setup or load_state_dict first).")
        longest = lengths_at_ratio(self.train_lengths, max(self.size_ratio, 1.0))[1]
        return _Encoder(self.tokenizer, max(self.max_len, longest, 4096), self.normalize)
