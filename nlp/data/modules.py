"""Text datamodules: classification and translation on embedded corpora or real files.

Batches (what the models and tasks receive):

* classification: ``(tokens (B, N) long, padding_mask (B, N) bool True=pad, y (B,))``;
* translation: ``(src (B, S), src_mask (B, S), tgt (B, T), refs list[str])``, ``tgt`` = ``<s> ... </s>``
  padded with ``<pad>``; ``refs`` are the raw reference sentences (for sacrebleu).

The tokenizer (and the class names) are part of ``state_dict()``, so Lightning stores them in the
checkpoint and ``mas-eval`` / ``mas-predict`` need nothing else. ``setup("predict")`` builds no dataset.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

import numpy as np

from core.train.data import SplitDataModule, cached_tensors, fixed_split
from core.train.errors import InputError
from core.train.tokenizers import NORMALIZERS, normalize, unknown_steps
from nlp.data.corpora import COMPARE_CLASSES, PAIR_KINDS, SEPARATOR, compare_corpus, translation_corpus
from nlp.data.files import find_split, load_labeled, load_parallel
from nlp.data.typing import TYPING_VARIANTS, typed
from nlp.tokenizers import BOS, EOS, PAD, CharTokenizer, SentencePieceTokenizer, Tokenizer, tokenizer_from_state

__all__ = ["TextClassificationDataModule", "TranslationDataModule", "pad_sequences"]

CORPUS_VERSION = 4  # 2: pair kinds; 3: half the numbers uniform in value; 4: close gaps log-uniform


def _kind_subset(kind: str) -> str:
    """The test-subset name of a pair kind: ``close`` reads ``test/acc_close_pairs``."""
    return "close_pairs" if kind == "close" else kind


def pad_sequences(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad id sequences: ``tokens (B, N)`` and ``padding_mask (B, N)`` (True = pad)."""
    n = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), n), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, out == PAD


def _fit_tokenizer(kind: str, texts: list[str], *, spm_model: str | None, vocab_size: int,
                   save_dir: str | None) -> Tokenizer:
    if kind == "char":
        return CharTokenizer.fit(texts)
    if kind != "sentencepiece":
        raise InputError(f"data.tokenizer must be 'char' or 'sentencepiece', not '{kind}'.")
    if spm_model:
        if not Path(spm_model).expanduser().is_file():
            raise InputError(f"data.spm_model={spm_model} does not exist.")
        return SentencePieceTokenizer.load(str(Path(spm_model).expanduser()))
    tok = SentencePieceTokenizer.fit(texts, vocab_size=vocab_size)
    if save_dir:  # next to the run's checkpoints (the checkpoint holds a copy as well)
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        tok.save(str(Path(save_dir) / "spm.model"))
    return tok


def _check_steps(steps: Sequence[str], *, variants: Sequence[str] = ()) -> list[str]:
    unknown = unknown_steps(steps)
    if unknown:
        raise InputError(f"data.normalize has unknown step(s) {unknown}; choose from {sorted(NORMALIZERS)}.")
    wrong = [v for v in variants if v not in TYPING_VARIANTS]
    if wrong:
        raise InputError(f"data.test_variants has unknown variant(s) {wrong}; choose from {sorted(TYPING_VARIANTS)}.")
    return list(steps)


class _Encoder:
    """Input normalisation, tokenizer and the length limit; counts truncations and warns once per call.

    ``steps`` (the datamodule's ``normalize``, stored with the tokenizer in the checkpoint) rewrite
    each input before tokenization, so ``mas-predict`` reads typed text as training did.
    """

    def __init__(self, tokenizer: Tokenizer, max_len: int, steps: Sequence[str] = ()) -> None:
        self.tokenizer, self.max_len, self.steps = tokenizer, max_len, list(steps)

    def encode(self, texts: Sequence[str], *, specials: bool = False, what: str = "texts") -> list[Tensor]:
        limit = self.max_len - (2 if specials else 0)
        out, cut = [], 0
        for t in texts:
            ids = self.tokenizer.encode(normalize(t, self.steps))
            if len(ids) > limit:
                ids, cut = ids[:limit], cut + 1
            if specials:
                ids = [BOS, *ids, EOS]
            out.append(torch.tensor(ids, dtype=torch.long))
        if cut:
            warnings.warn(f"{cut} of {len(texts)} {what} exceed {self.max_len} tokens and were truncated.",
                          stacklevel=3)
        return out


class _TextDataModule(SplitDataModule):
    """Loader plumbing and tokenizer state shared by the two text datamodules (not used alone)."""

    def __init__(self, *, cache_dir: str, batch_size: int, num_workers: int, tokenizer: str,
                 spm_model: str | None, vocab_size: int, save_dir: str | None, normalize: Sequence[str],
                 test_variants: Sequence[str]) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.tokenizer_kind, self.spm_model, self.vocab_size, self.save_dir = tokenizer, spm_model, vocab_size, save_dir
        self.normalize = _check_steps(normalize, variants=test_variants)
        self.test_variants = list(test_variants)
        self.tokenizer: Tokenizer | None = None
        self.items: dict[str, list] = {}

    def _variant_texts(self, texts: Sequence[str], variant: str, separator: str | None = None) -> list[str]:
        """The test texts as typed in ``variant`` (a fixed seed per variant: the same set every run)."""
        rng = np.random.RandomState(sorted(TYPING_VARIANTS).index(variant))
        return [typed(t, variant, rng, separator) for t in texts]

    def _tokenizer_state(self) -> dict:
        return {"tokenizer": self.tokenizer.state_dict() if self.tokenizer else None, "normalize": self.normalize}

    def _load_tokenizer_state(self, state: dict) -> None:
        if state.get("tokenizer"):
            self.tokenizer = tokenizer_from_state(state["tokenizer"])
        self.normalize = list(state.get("normalize", ()))  # checkpoints from before normalisation: none

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        return DataLoader(self.items[split], batch_size=self.batch_size, shuffle=train, drop_last=False,
                          collate_fn=self.collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)


    @abc.abstractmethod
    def collate(self, items: list) -> tuple:
        """A batch from dataset items; each text datamodule implements it."""


class TextClassificationDataModule(_TextDataModule):
    """Text classification on the embedded number-comparison corpus or on real files.

    Args:
        cache_dir: where the embedded corpus is cached.
        corpus: ``numbers_compare`` (embedded) or ``null`` to read ``path``.
        path: a labelled file (its training split; val/test are carved out) or a directory with
            ``train``/``valid``/``test`` ``.csv``/``.jsonl`` files (AG News: ``train.csv``, ``test.csv``).
        format: ``auto``, ``csv``, ``jsonl`` or ``ag_news`` (see :mod:`nlp.data.files`).
        tokenizer: ``char`` or ``sentencepiece``; ``spm_model`` an existing model file (else trained).
        max_len: longest input in tokens (longer texts are truncated with a warning).
        normalize: normalisation steps applied to every text before tokenization (and at predict time),
            from :data:`core.train.tokenizers.NORMALIZERS`; stored in the checkpoint.
        test_variants: typed variants of the test texts (:data:`nlp.data.typing.TYPING_VARIANTS`), each
            reported as ``test/acc_<variant>``.
        corpus_size, langs, max_number, pair_kinds: the embedded corpus (see
            :func:`nlp.data.corpora.compare_corpus`); its test split also reports ``test/acc_<kind>``
            per pair kind (``close`` as ``test/acc_close_pairs``).
    """

    EMBEDDED = "numbers_compare"  # the embedded corpus a subclass replaces

    def __init__(self, *, cache_dir: str, corpus: str | None = "numbers_compare", path: str | None = None,
                 format: str = "auto", tokenizer: str = "char", spm_model: str | None = None,
                 vocab_size: int = 8000, save_dir: str | None = None, max_len: int = 128,
                 corpus_size: int = 40000, langs: Sequence[str] = ("en", "de", "fr", "es"),
                 max_number: int = 9999, pair_kinds: dict[str, float] | None = None,
                 normalize: Sequence[str] = (), test_variants: Sequence[str] = (), batch_size: int = 64,
                 num_workers: int = 0) -> None:
        super().__init__(cache_dir=cache_dir, batch_size=batch_size, num_workers=num_workers, tokenizer=tokenizer,
                         spm_model=spm_model, vocab_size=vocab_size, save_dir=save_dir, normalize=normalize,
                         test_variants=test_variants)
        if corpus not in (None, self.EMBEDDED):
            raise InputError(f"data.corpus must be '{self.EMBEDDED}' or null (then data.path), not '{corpus}'.")
        if corpus is None and not path:
            raise InputError("data.path must name a labelled CSV/JSONL file or directory when data.corpus is null.")
        self.corpus, self.path, self.format, self.max_len = corpus, path, format, max_len
        self.corpus_size, self.langs, self.max_number = corpus_size, tuple(langs), max_number
        self.pair_kinds = {str(k): float(v) for k, v in (pair_kinds or {k: 1.0 for k in PAIR_KINDS}).items()}
        if set(self.pair_kinds) - set(PAIR_KINDS):
            raise InputError(f"data.pair_kinds may name {list(PAIR_KINDS)}, not {sorted(self.pair_kinds)}.")
        self.classes: list[str] = list(COMPARE_CLASSES) if corpus else []
        kinds = [_kind_subset(k) for k in PAIR_KINDS if self.pair_kinds.get(k)] if corpus else []
        self.test_subsets = kinds + self.test_variants

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _corpus_file(self) -> Path:
        langs = "-".join(self.langs)
        kinds = "-".join(f"{k}{v:g}" for k, v in sorted(self.pair_kinds.items()))
        name = f"compare_{langs}_{self.max_number}_{self.corpus_size}_{kinds}.pt"
        return self.cache_dir / "nlp" / name

    def _build_corpus(self) -> dict:
        return cached_tensors(self._corpus_file(), lambda: compare_corpus(
            self.corpus_size, langs=self.langs, max_number=self.max_number, pair_kinds=self.pair_kinds,
            seed=0), version=CORPUS_VERSION)

    def prepare_data(self) -> None:
        if self.corpus:
            self._build_corpus()

    def _raw_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        """Texts and labels per split, the test subsets (``test_<name>``) included."""
        if self.corpus:
            data = self._build_corpus()
            labels = [self.classes[i] for i in data["label"]]
            idx = fixed_split(len(labels), (0.8, 0.1, 0.1), seed=0)
            splits = {k: ([data["text"][i] for i in ix], [labels[i] for i in ix]) for k, ix in idx.items()}
            for kind in (k for k in PAIR_KINDS if _kind_subset(k) in self.test_subsets):
                ix = [i for i in idx["test"] if data["kind"][i] == kind]
                splits[f"test_{_kind_subset(kind)}"] = ([data["text"][i] for i in ix], [labels[i] for i in ix])
            return self._with_variants(splits, SEPARATOR)
        root = Path(self.path).expanduser()
        if root.is_file():
            files = {"train": root}
        elif root.is_dir():
            files = {s: find_split(root, s) for s in ("train", "val", "test")}
            if files["train"] is None:
                raise InputError(f"data.path={root} has no train.csv / train.jsonl.")
        else:
            raise InputError(f"data.path={root} does not exist.")
        splits = {s: load_labeled(p, self.format) for s, p in files.items() if p is not None}
        texts, labels = splits["train"]
        missing = [s for s in ("val", "test") if s not in splits]
        if missing:  # carve the missing splits out of train, fixed seed
            idx = fixed_split(len(texts), (0.9, 0.05, 0.05) if len(missing) == 2 else (0.95, 0.05, 0.0), seed=0)
            other = iter(["val", "test"] if len(missing) == 2 else missing)
            parts = {"train": idx["train"], next(other): idx["val"]}
            if len(missing) == 2:
                parts["test"] = idx["test"]
            splits.update({s: ([texts[i] for i in ix], [labels[i] for i in ix]) for s, ix in parts.items()})
        return self._with_variants(splits, None)

    def _with_variants(self, splits: dict, separator: str | None) -> dict:
        texts, labels = splits["test"]
        for v in self.test_variants:
            splits[f"test_{v}"] = (self._variant_texts(texts, v, separator), labels)
        return splits

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.items:
            return
        splits = self._raw_splits()
        if self.tokenizer is None:
            train_texts = [normalize(t, self.normalize) for t in splits["train"][0]]
            self.tokenizer = _fit_tokenizer(self.tokenizer_kind, train_texts, spm_model=self.spm_model,
                                            vocab_size=self.vocab_size, save_dir=self.save_dir)
        if not self.classes:
            found = set(splits["train"][1])
            numeric = all(c.lstrip("-").isdigit() for c in found)
            self.classes = sorted(found, key=int) if numeric else sorted(found)
        index = {c: i for i, c in enumerate(self.classes)}
        enc = self.encoder()
        for split, (texts, labels) in splits.items():
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise InputError(f"the {split} split has labels {unknown[:3]} not seen in training.")
            ids = enc.encode(texts, what=f"{split} texts")
            self.items[split] = list(zip(ids, (index[l] for l in labels)))

    def encoder(self) -> _Encoder:
        if self.tokenizer is None:
            raise RuntimeError("the tokenizer is not built yet (call setup or load_state_dict first).")
        return _Encoder(self.tokenizer, self.max_len, self.normalize)

    def collate(self, items: list) -> tuple[Tensor, Tensor, Tensor]:
        tokens, mask = pad_sequences([t for t, _ in items])
        return tokens, mask, torch.tensor([y for _, y in items], dtype=torch.long)

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.tokenizer.vocab_size, "num_classes": self.num_classes, "max_len": self.max_len}

    def state_dict(self) -> dict:
        return {**self._tokenizer_state(), "classes": list(self.classes)}

    def load_state_dict(self, state: dict) -> None:
        self._load_tokenizer_state(state)
        self.classes = list(state.get("classes") or self.classes)


class TranslationDataModule(_TextDataModule):
    """Translation on the embedded number corpus (``numbers``) or on parallel text files.

    Args:
        corpus: ``numbers`` (embedded, ``src_lang`` -> ``tgt_lang`` number words) or ``null`` to read ``path``.
        path: a directory in one of the layouts of :func:`nlp.data.files.load_parallel`.
        src_lang, tgt_lang: file suffixes / num2words languages.
        tokenizer: ``char`` or ``sentencepiece``: one joint vocabulary for both sides.
        max_src_len, max_tgt_len: length limits in tokens (``max_tgt_len`` counts ``<s>`` and ``</s>``).
        normalize: normalisation steps for source sentences (and predict inputs); targets stay as written.
        test_variants: typed variants of the test sources, each reported as ``test/exact_match_<variant>``
            and ``test/chrf_<variant>`` (greedy decoding).
        train_size, val_size, test_size, max_number: the embedded corpus (held-out numbers for val/test).
    """

    def __init__(self, *, cache_dir: str, corpus: str | None = "numbers", path: str | None = None,
                 src_lang: str = "en", tgt_lang: str = "de", tokenizer: str = "char",
                 spm_model: str | None = None, vocab_size: int = 8000, save_dir: str | None = None,
                 max_src_len: int = 96, max_tgt_len: int = 96, train_size: int = 20000, val_size: int = 500,
                 test_size: int = 1000, max_number: int = 999_999, normalize: Sequence[str] = (),
                 test_variants: Sequence[str] = (), batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__(cache_dir=cache_dir, batch_size=batch_size, num_workers=num_workers, tokenizer=tokenizer,
                         spm_model=spm_model, vocab_size=vocab_size, save_dir=save_dir, normalize=normalize,
                         test_variants=test_variants)
        self.test_subsets = self.test_variants
        if corpus not in (None, "numbers"):
            raise InputError(f"data.corpus must be 'numbers' or null (then data.path), not '{corpus}'.")
        if corpus is None and not path:
            raise InputError("data.path must name a directory of parallel text when data.corpus is null.")
        self.corpus, self.path, self.src_lang, self.tgt_lang = corpus, path, src_lang, tgt_lang
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.max_number = max_number
        self.refs: dict[str, list[str]] = {}

    def _corpus_file(self) -> Path:
        s = self.sizes
        name = f"numbers_{self.src_lang}-{self.tgt_lang}_{self.max_number}_{s['train']}-{s['val']}-{s['test']}.pt"
        return self.cache_dir / "nlp" / name

    def _build_corpus(self) -> dict:
        return cached_tensors(self._corpus_file(), lambda: translation_corpus(
            self.sizes, src_lang=self.src_lang, tgt_lang=self.tgt_lang, max_number=self.max_number, seed=0),
            version=CORPUS_VERSION)

    def prepare_data(self) -> None:
        if self.corpus:
            self._build_corpus()

    def _raw_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        if self.corpus:
            data = self._build_corpus()
            return self._with_variants({s: (data[s]["src"], data[s]["tgt"]) for s in ("train", "val", "test")})
        splits = {s: load_parallel(self.path, s, self.src_lang, self.tgt_lang) for s in ("train", "val", "test")}
        if splits["train"] is None:
            raise InputError(f"data.path={self.path} has no train.{self.src_lang}/train.{self.tgt_lang} "
                             "(or raw IWSLT train.tags.*) files.")
        if splits["val"] is None:  # carve 2% (at least one pair) of train, fixed seed
            src, tgt = splits["train"]
            idx = fixed_split(len(src), (0.98, 0.02, 0.0), seed=0)
            splits["val"] = ([src[i] for i in idx["val"]], [tgt[i] for i in idx["val"]])
            splits["train"] = ([src[i] for i in idx["train"]], [tgt[i] for i in idx["train"]])
        if splits["test"] is None:
            splits["test"] = splits["val"]
        return self._with_variants(splits)

    def _with_variants(self, splits: dict) -> dict:
        src, tgt = splits["test"]
        for v in self.test_variants:
            splits[f"test_{v}"] = (self._variant_texts(src, v), tgt)
        return splits

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.items:
            return
        splits = self._raw_splits()
        if self.tokenizer is None:
            src, tgt = splits["train"]
            src = [normalize(t, self.normalize) for t in src]
            self.tokenizer = _fit_tokenizer(self.tokenizer_kind, src + list(tgt), spm_model=self.spm_model,
                                            vocab_size=self.vocab_size, save_dir=self.save_dir)
        for split, (src, tgt) in splits.items():
            s = self.src_encoder().encode(src, what=f"{split} source sentences")
            t = _Encoder(self.tokenizer, self.max_tgt_len).encode(tgt, specials=True,
                                                                   what=f"{split} target sentences")
            self.items[split] = list(zip(s, t, tgt))

    def src_encoder(self) -> _Encoder:
        if self.tokenizer is None:
            raise RuntimeError("the tokenizer is not built yet (call setup or load_state_dict first).")
        return _Encoder(self.tokenizer, self.max_src_len, self.normalize)

    def collate(self, items: list) -> tuple[Tensor, Tensor, Tensor, list[str]]:
        src, src_mask = pad_sequences([s for s, _, _ in items])
        tgt, _ = pad_sequences([t for _, t, _ in items])
        return src, src_mask, tgt, [r for _, _, r in items]

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.tokenizer.vocab_size, "max_len": max(self.max_src_len, self.max_tgt_len)}

    def state_dict(self) -> dict:
        return self._tokenizer_state()

    def load_state_dict(self, state: dict) -> None:
        self._load_tokenizer_state(state)
