"""Hugging Face ``datasets`` read from local disk: the splits and columns every ``data=hf_*`` config shares.

``data.path`` is one of

* a folder written by ``DatasetDict.save_to_disk`` (``dataset_dict.json``): its splits by name;
* a folder written by ``Dataset.save_to_disk`` (``state.json``): the training split;
* one ``.parquet`` file: the training split;
* a folder of parquet files: per split name ``<name>.parquet``, ``<name>-*.parquet`` or ``<name>/*.parquet``
  (also under ``data/``, the layout of a Hub dataset repository); parquet files named after no split are
  the training split.

``data.splits`` maps the roles ``train``/``val``/``test`` to split names. A validation split that is not
there (or ``val: null``) is carved from train: ``val_fraction`` of it, drawn with ``split_seed``; a missing
test split is the validation split. ``data.columns`` maps roles (``image``, ``label``, ``text``, ``audio``,
``transcript``, ``src``, ``tgt``, ``mask``, ...) to column names; ``a.b`` reads key ``b`` of a dict column
``a`` (e.g. ``translation.de``). Media columns (Image, Audio) are read undecoded (``{"bytes", "path"}``):
the domains decode them with PIL and soundfile, never with ``datasets``' own decoders (torchcodec/FFmpeg).

Nothing is fetched from the Hub: the Hub's offline switches are set before ``datasets`` is imported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.train.errors import ConfigError, InputError

__all__ = ["HFSplit", "SPLIT_ROLES", "class_names", "import_datasets", "label_indices", "label_names",
           "media_source", "open_splits"]

log = logging.getLogger(__name__)

SPLIT_ROLES = ("train", "val", "test")
INSTALL_HINT = "install the 'hf' extra: pip install -e '.[hf]'"


def import_datasets():
    """The ``datasets`` package, imported on first use (it is an optional extra), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read before import: never reach the Hub at run time
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(f"data.path names a Hugging Face dataset, which needs the datasets package; "
                          f"{INSTALL_HINT}.") from exc
    return datasets


class HFSplit:
    """One split: a ``datasets.Dataset`` (media undecoded) with the config's role -> column map.

    ``record(i)`` gives ``{role: value}`` as plain python (media as ``{"bytes", "path"}`` dicts);
    ``values(role)`` a whole column (labels, texts), read at once.
    """

    def __init__(self, ds: Any, columns: Mapping[str, str], *, name: str, root: Path) -> None:
        self.ds, self.columns, self.name, self.root = ds, dict(columns), name, root

    def __len__(self) -> int:
        return self.ds.num_rows

    def record(self, i: int) -> dict[str, Any]:
        row = self.ds[int(i)]
        return {role: _field(row, col) for role, col in self.columns.items()}

    def values(self, role: str) -> list[Any]:
        col = self.columns[role]
        top, key = _split_field(col, self.ds.column_names)
        vals = list(self.ds[top])
        return vals if key is None else [v[key] if isinstance(v, Mapping) else None for v in vals]

    def iter_values(self, role: str, batch_size: int = 256):
        """A column's values one by one, read ``batch_size`` rows at a time (for media: not all at once)."""
        top, key = _split_field(self.columns[role], self.ds.column_names)
        for batch in self.ds.select_columns([top]).iter(batch_size=batch_size):
            for v in batch[top]:
                yield v if key is None else (v[key] if isinstance(v, Mapping) else None)

    def feature(self, role: str) -> Any:
        top, key = _split_field(self.columns[role], self.ds.column_names)
        feat = self.ds.features[top]
        return feat if key is None else None

    def where(self, role: str) -> str:
        """How an error names the column: ``the val split's column 'x' (data.columns.label)``."""
        return f"the {self.name} split's column '{self.columns[role]}' (data.columns.{role})"


def _split_field(col: str, names: Sequence[str]) -> tuple[str, str | None]:
    if col in names or "." not in col:
        return col, None
    top, key = col.split(".", 1)
    return top, key


def _field(row: Mapping[str, Any], col: str) -> Any:
    top, key = _split_field(col, list(row))
    value = row[top]
    return value if key is None else (value or {}).get(key)


def _parquet_files(root: Path, name: str) -> list[Path]:
    found: list[Path] = []
    for base in (root, root / "data"):
        found += [base / f"{name}.parquet"] if (base / f"{name}.parquet").is_file() else []
        found += sorted(base.glob(f"{name}-*.parquet")) + sorted((base / name).glob("*.parquet"))
    return found


def _load_parquet(datasets: Any, root: Path, names: Sequence[str], cache_dir: str | None) -> dict[str, Any]:
    files = {n: _parquet_files(root, n) for n in dict.fromkeys(names)} if root.is_dir() else {names[0]: [root]}
    files = {n: f for n, f in files.items() if f}
    if root.is_dir() and names[0] not in files:  # files named after no split: the training split
        taken = {p for f in files.values() for p in f}
        loose = [p for p in sorted(root.glob("*.parquet")) if p not in taken]
        if loose:
            files[names[0]] = loose
    if not files:
        raise InputError(f"data.path={root} holds neither a saved dataset (dataset_dict.json or state.json, "
                         "written by save_to_disk) nor .parquet files.")
    kw = {"cache_dir": str(Path(cache_dir).expanduser())} if cache_dir else {}
    try:
        return {n: datasets.Dataset.from_parquet([str(p) for p in f], **kw) for n, f in files.items()}
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise InputError(f"the parquet files under data.path={root} cannot be read ({type(exc).__name__}).") from exc


def _load(root: Path, names: Sequence[str], cache_dir: str | None) -> dict[str, Any]:
    """Every split found under ``root`` by name (``names[0]`` is the training split's name)."""
    if not root.exists():
        raise InputError(f"data.path={root} does not exist (give a folder written by save_to_disk, "
                         "or parquet files).")
    datasets = import_datasets()
    saved = root.is_dir() and ((root / "dataset_dict.json").is_file() or (root / "state.json").is_file())
    if not saved and not (root.is_dir() or root.suffix == ".parquet"):
        raise InputError(f"data.path={root} is neither a folder written by save_to_disk nor a .parquet file.")
    if not saved:
        return _load_parquet(datasets, root, names, cache_dir)
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception as exc:  # noqa: BLE001 - a corrupt or half-written folder
        raise InputError(f"data.path={root} is not a readable save_to_disk folder ({type(exc).__name__}).") from exc
    return dict(loaded) if isinstance(loaded, Mapping) else {names[0]: loaded}


def _undecoded(ds: Any, used: Sequence[str]) -> Any:
    """Only the used columns; Image/Audio features switched to ``decode=False`` (raw bytes and paths)."""
    ds = ds.select_columns(list(dict.fromkeys(used)))
    for col in ds.column_names:
        feat = ds.features[col]
        if dataclasses.is_dataclass(feat) and getattr(feat, "decode", False):
            ds = ds.cast_column(col, dataclasses.replace(feat, decode=False))
    return ds


def _check_columns(ds: Any, name: str, root: Path, columns: Mapping[str, str]) -> list[str]:
    used = []
    for role, col in columns.items():
        top, _ = _split_field(col, ds.column_names)
        if top not in ds.column_names:
            raise InputError(f"the {name} split of data.path={root} has no column '{col}' (data.columns.{role}); "
                             f"its columns are: {', '.join(ds.column_names)}.")
        used.append(top)
    return used


def open_splits(path: str | Path, *, splits: Mapping[str, str | None], columns: Mapping[str, str | None],
                required: Sequence[str], val_fraction: float = 0.1, split_seed: int = 0,
                cache_dir: str | None = None) -> dict[str, HFSplit]:
    """The ``train``/``val``/``test`` splits of a dataset on disk (see the module docstring).

    Args:
        splits: role -> split name (``val``/``test`` may be null).
        columns: role -> column name; null entries are unused.
        required: roles that must name a column (the domain's inputs and targets).
        val_fraction, split_seed: the validation split carved from train when there is none.
    """
    wrong = sorted(set(splits) - set(SPLIT_ROLES))
    if wrong:
        raise ConfigError(f"data.splits takes the keys {', '.join(SPLIT_ROLES)}, not {', '.join(wrong)}.")
    unset = [r for r in required if not columns.get(r)]
    if unset:
        raise ConfigError(f"data.columns.{unset[0]} must name the dataset's {unset[0]} column.")
    if not splits.get("train"):
        raise ConfigError("data.splits.train must name the training split (e.g. train).")
    root = Path(path).expanduser()
    names = [str(splits[r]) for r in SPLIT_ROLES if splits.get(r)]
    found = _load(root, names, cache_dir)
    cols = {r: str(c) for r, c in columns.items() if c}
    train_name = str(splits["train"])
    if train_name not in found:
        raise InputError(f"data.path={root} has no split '{train_name}' (data.splits.train); "
                         f"it has: {', '.join(found)}.")
    out: dict[str, Any] = {}
    for role in SPLIT_ROLES:
        name = splits.get(role)
        if name and str(name) in found:
            ds = found[str(name)]
            out[role] = _undecoded(ds, _check_columns(ds, str(name), root, cols))
    if "val" not in out:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"data.path={root} has no validation split '{splits.get('val')}' and "
                              f"data.val_fraction={val_fraction} carves none from train; give one in (0, 1).")
        log.info("no validation split '%s' in %s (it has %s): %.0f%% of train is held out (split seed %d)",
                 splits.get("val"), root, ", ".join(found), 100 * val_fraction, split_seed)
        train = out["train"]
        n_val = max(1, int(round(val_fraction * len(train))))  # at least one row, whatever the rounding
        if n_val >= len(train):
            raise InputError(f"the training split of data.path={root} has {len(train)} rows: too few to "
                             f"hold out data.val_fraction={val_fraction} of them for validation.")
        perm = np.random.RandomState(split_seed).permutation(len(train))
        out["train"] = train.select(sorted(perm[n_val:].tolist()))
        out["val"] = train.select(sorted(perm[:n_val].tolist()))
    base = root if root.is_dir() else root.parent
    opened = {role: HFSplit(ds, cols, name=role, root=base) for role, ds in out.items()}
    opened.setdefault("test", opened["val"])  # no test split: the validation split is the test split
    return opened


def _sort_key(name: str) -> tuple:
    return (0, int(name), name) if name.lstrip("-").isdigit() else (1, 0, name)


def class_names(train: HFSplit, role: str = "label") -> list[str]:
    """The class names: a ClassLabel's names in their order, else the training split's values sorted
    (numbers numerically, so integer labels 0..K-1 keep their meaning)."""
    names = getattr(train.feature(role), "names", None)
    if names:
        return [str(n) for n in names]
    found = {str(v) for v in label_names(train, role)}
    return sorted(found, key=_sort_key)


def label_names(split: HFSplit, role: str = "label") -> list[str]:
    """Each row's label as a name (a ClassLabel index becomes its name); unlabelled rows are refused."""
    names = getattr(split.feature(role), "names", None)
    out = []
    for v in split.values(role):
        if v is None or (names and isinstance(v, int) and not 0 <= v < len(names)):
            raise InputError(f"{split.where(role)} has unlabelled rows (value {v}); use a labelled split.")
        out.append(str(names[v]) if names and isinstance(v, int) else str(v))
    return out


def label_indices(split: HFSplit, classes: Sequence[str], role: str = "label") -> list[int]:
    """Each row's class index in ``classes``; a label outside them gets one sentence."""
    index = {c: i for i, c in enumerate(classes)}
    names = label_names(split, role)
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise InputError(f"{split.where(role)} has labels {unknown[:3]} not seen in training.")
    return [index[n] for n in names]


def media_source(value: Any, root: Path) -> bytes | str | None:
    """The encoded bytes or the file path of an undecoded media value (``{"bytes", "path"}``, bytes or a
    path string); ``None`` for anything else (already decoded arrays). Relative paths resolve against the
    dataset's folder."""
    if isinstance(value, Mapping) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() or p.exists() else root / p)
    return None
