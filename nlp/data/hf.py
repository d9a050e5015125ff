"""Text from Hugging Face datasets on disk: text classification and translation.

The splits and columns come from :func:`core.train.hf_source.open_splits`; these datamodules are the file
datamodules of :mod:`nlp.data.modules` with only their source of raw ``(texts, labels)`` / ``(sources,
targets)`` per split replaced, so tokenizer training, normalisation, typed test variants, batching and the
checkpoint state are theirs.

Translation columns may point into a dict column (``columns.src=translation.de``), the layout of the Hub's
WMT/IWSLT sets.
"""

from __future__ import annotations

from core.train.errors import InputError
from core.train.hf_source import HFSplit, class_names, label_names, open_splits
from nlp.data.modules import TextClassificationDataModule, TranslationDataModule

__all__ = ["HFTextClassificationDataModule", "HFTranslationDataModule"]


def _texts(split: HFSplit, role: str) -> list[str]:
    out = split.values(role)
    missing = sum(v is None for v in out)
    if missing:
        raise InputError(f"{split.where(role)} has {missing} rows without text.")
    return [str(v) for v in out]


class _HFSource:
    """The dataset-on-disk arguments both text datamodules take."""

    required: tuple[str, ...] = ()

    def _hf_args(self, splits: dict, columns: dict, val_fraction: float, split_seed: int) -> None:
        self.splits, self.columns = dict(splits), dict(columns)
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def _open(self) -> dict[str, HFSplit]:
        # cache_dir (the embedded corpora's, unused here) holds the arrow copies of parquet files
        return open_splits(self.path, splits=self.splits, columns=self.columns, required=self.required,
                           val_fraction=self.val_fraction, split_seed=self.split_seed, cache_dir=str(self.cache_dir))

    def prepare_data(self) -> None:
        self._open()


class HFTextClassificationDataModule(_HFSource, TextClassificationDataModule):
    """Text classification on a Hugging Face dataset saved on disk (``save_to_disk`` folder or parquet).

    Args:
        path, splits, val_fraction, split_seed: see :func:`core.train.hf_source.open_splits`.
        columns: ``text`` and ``label``; the classes are a ClassLabel's names, else the sorted training labels.
        cache_dir: where parquet files are converted to arrow (memory-mapped) once.
        the rest: as :class:`nlp.data.modules.TextClassificationDataModule` (tokenizer, max_len, normalize, ...).
    """

    required = ("text", "label")

    def __init__(self, *, path: str, splits: dict, columns: dict, val_fraction: float = 0.05, split_seed: int = 0,
                 **kw) -> None:
        super().__init__(corpus=None, path=path, **kw)
        self._hf_args(splits, columns, val_fraction, split_seed)

    def _raw_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        opened = self._open()
        self.classes = self.classes or class_names(opened["train"])  # a checkpoint's classes win
        splits = {role: (_texts(s, "text"), label_names(s, "label")) for role, s in opened.items()}
        return self._with_variants(splits, None)


class HFTranslationDataModule(_HFSource, TranslationDataModule):
    """Translation on a Hugging Face dataset saved on disk: a source and a target text column.

    Args:
        path, splits, val_fraction, split_seed: see :func:`core.train.hf_source.open_splits`.
        columns: ``src`` and ``tgt`` (``translation.de`` reads key ``de`` of a dict column ``translation``).
        cache_dir: where parquet files are converted to arrow (memory-mapped) once.
        the rest: as :class:`nlp.data.modules.TranslationDataModule`.
    """

    required = ("src", "tgt")

    def __init__(self, *, path: str, splits: dict, columns: dict, val_fraction: float = 0.02, split_seed: int = 0,
                 **kw) -> None:
        super().__init__(corpus=None, path=path, **kw)
        self._hf_args(splits, columns, val_fraction, split_seed)

    def _raw_splits(self) -> dict[str, tuple[list[str], list[str]]]:
        splits = {role: (_texts(s, "src"), _texts(s, "tgt")) for role, s in self._open().items()}
        return self._with_variants(splits)
