"""Readers for real text data on disk: labelled CSV/JSONL (incl. AG News) and parallel text (incl. IWSLT14).

Labelled files (``load_labeled``):

* ``csv``: a header with ``text`` and ``label`` columns (other columns ignored);
* ``jsonl``: one object per line with ``"text"`` and ``"label"``;
* ``ag_news``: the AG News CSV layout, no header, columns ``class index (1-4), title, description``;
  the text is ``title + " " + description`` and labels are named World/Sports/Business/Sci/Tech.

Parallel corpora (``load_parallel``) in a directory, one sentence per line, lines aligned:

* ``<split>.<src_lang>`` / ``<split>.<tgt_lang>`` with split ``train``, ``valid`` (or ``val``/``dev``) and
  ``test``: the ``train.src``/``train.tgt`` style and fairseq's prepared IWSLT14 (``train.de``/``train.en``);
* the raw IWSLT14 release (``train.tags.de-en.de``, ``IWSLT14.TED.dev2010.de-en.de.xml``, ``...tst201*.xml``):
  metadata lines starting with ``<`` are skipped and ``<seg>`` contents are read; validation is dev2010,
  test is every ``tst`` file of the pair, in name order.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from core.train.errors import InputError

__all__ = ["AG_NEWS_CLASSES", "find_split", "load_labeled", "load_parallel"]

AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
SPLIT_NAMES = {"train": ("train",), "val": ("valid", "val", "dev"), "test": ("test",)}
LABELED_SUFFIXES = (".csv", ".jsonl", ".json")
_SEG = re.compile(r"<seg[^>]*>(.*)</seg>", re.IGNORECASE)


def _detect(path: Path) -> str:
    if path.suffix in (".jsonl", ".json"):
        return "jsonl"
    with path.open(newline="", encoding="utf-8") as f:
        first = next(csv.reader(f), None)
    if first is None:
        raise InputError(f"{path} is empty.")
    if {"text", "label"} <= {c.strip().lower() for c in first}:
        return "csv"
    if len(first) == 3 and first[0].strip().isdigit():
        return "ag_news"
    raise InputError(f"{path} has neither a 'text,label' header nor the AG News layout (class,title,description).")


def load_labeled(path: str | Path, fmt: str = "auto") -> tuple[list[str], list[str]]:
    """Texts and string labels of one file; ``fmt`` is ``auto``, ``csv``, ``jsonl`` or ``ag_news``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"data file {path} does not exist.")
    fmt = _detect(path) if fmt == "auto" else fmt
    texts, labels = [], []
    i = 0
    try:
        if fmt == "jsonl":
            with path.open(encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        obj = json.loads(line)
                        texts.append(str(obj["text"]))
                        labels.append(str(obj["label"]))
        elif fmt == "csv":
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
                for i, row in enumerate(reader, 2):
                    texts.append(row["text"])
                    labels.append(str(row["label"]).strip())
        elif fmt == "ag_news":
            with path.open(newline="", encoding="utf-8") as f:
                for i, row in enumerate(csv.reader(f), 1):
                    cls = int(row[0])
                    if not 1 <= cls <= len(AG_NEWS_CLASSES):
                        raise ValueError(f"class index {cls}")
                    texts.append((row[1] + " " + row[2]).replace("\\", " ").strip())
                    labels.append(AG_NEWS_CLASSES[cls - 1])
        else:
            raise InputError(f"data.format must be auto, csv, jsonl or ag_news, not '{fmt}'.")
    except InputError:
        raise
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise InputError(f"{path} line {i} is not valid {fmt} (text,label): {type(exc).__name__} {exc}.") from exc
    if not texts:
        raise InputError(f"{path} holds no examples.")
    return texts, labels


def find_split(root: Path, split: str, suffixes: tuple[str, ...] = LABELED_SUFFIXES) -> Path | None:
    """``root/<name><suffix>`` for the split's usual names (``valid``/``val``/``dev`` for val), or None."""
    for name in SPLIT_NAMES[split]:
        for suffix in suffixes:
            p = root / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _read_lines(path: Path) -> list[str]:
    if path.suffix == ".xml":
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _SEG.search(line)
            if m:
                out.append(m.group(1).strip())
        return out
    if ".tags." in path.name:
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("<")]
    return [ln.rstrip("\n").strip() for ln in path.read_text(encoding="utf-8").splitlines()]


def _pair_files(root: Path, split: str, src: str, tgt: str) -> list[tuple[Path, Path]]:
    for name in SPLIT_NAMES[split]:
        s, t = root / f"{name}.{src}", root / f"{name}.{tgt}"
        if s.is_file() and t.is_file():
            return [(s, t)]
    pair = f"{src}-{tgt}" if list(root.glob(f"*.{src}-{tgt}.{src}*")) else f"{tgt}-{src}"
    if split == "train":
        s, t = root / f"train.tags.{pair}.{src}", root / f"train.tags.{pair}.{tgt}"
        return [(s, t)] if s.is_file() and t.is_file() else []
    pattern = "*dev2010*" if split == "val" else "*tst*"
    return [(s, s.with_name(s.name[: -len(f".{src}.xml")] + f".{tgt}.xml"))
            for s in sorted(root.glob(f"{pattern}.{pair}.{src}.xml"))]


def load_parallel(root: str | Path, split: str, src_lang: str, tgt_lang: str) -> tuple[list[str], list[str]] | None:
    """Aligned source/target sentences of a split, or ``None`` when the directory has no such split."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"data.path={root} is not a directory.")
    files = _pair_files(root, split, src_lang, tgt_lang)
    if not files:
        return None
    src, tgt = [], []
    for s, t in files:
        if not t.is_file():
            raise InputError(f"{s} has no target file {t}.")
        a, b = _read_lines(s), _read_lines(t)
        if len(a) != len(b):
            raise InputError(f"{s} has {len(a)} lines but {t} has {len(b)}; parallel files must align line by line.")
        src += a
        tgt += b
    keep = [i for i, (a, b) in enumerate(zip(src, tgt)) if a and b]  # drop empty pairs
    return [src[i] for i in keep], [tgt[i] for i in keep]
