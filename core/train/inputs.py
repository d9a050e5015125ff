"""The inputs of ``mas-predict``, one rule for every domain.

``input=`` names a file, a folder (its files with the domain's suffixes) or a list of both. Every
readable file gets its output; an unreadable one gets an ``error:`` line naming it and its reason,
and a record; the run then ends with one sentence and exit status 2 if any file failed. A single bad
file ends with its own sentence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from core.train.errors import InputError

__all__ = ["STDIN", "each_readable", "finish_inputs", "input_files"]

T = TypeVar("T")
STDIN = "-"  # input=- reads standard input (text)


def input_files(spec: Any, suffixes: set[str], kind: str) -> list[Path]:
    """Files named by ``input=``: a file, a folder (its files with ``suffixes``), or a list.

    Raises :class:`InputError` with one sentence for a missing input or an empty selection.
    """
    if spec is None:
        raise InputError(f"mas-predict needs input=<{kind} file, folder or list of files>.")
    paths: list[Path] = []
    for item in spec if isinstance(spec, (list, tuple)) else [spec]:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in suffixes)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"input file {p} does not exist.")
    if not paths:
        raise InputError(f"no {kind} files ({', '.join(sorted(suffixes))}) found in {spec}.")
    return paths


def each_readable(paths: list[Path], read: Callable[[Path], T], results: list[dict]) -> Iterator[tuple[Path, T]]:
    """Yield ``(path, read(path))`` for each readable file; a file whose ``read`` raises
    :class:`InputError` gets an ``error:`` line on stderr and an ``{"file", "error"}`` record in ``results``."""
    for p in paths:
        try:
            item = read(p)
        except InputError as exc:
            if len(paths) == 1:
                raise  # one file: the CLI prints its sentence and exits 2
            print(f"error: {exc}", file=sys.stderr, flush=True)
            results.append({"file": str(p), "error": str(exc)})
            continue
        yield p, item


def finish_inputs(results: list[dict], out: Path | None = None, name: str = "") -> None:
    """Write ``results`` as JSON lines to ``out/name`` (when given); raise one sentence if any input failed."""
    if out is not None and name:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in results))
    failed = [r["file"] for r in results if "error" in r]
    if failed:
        good = len({r.get("file") for r in results if "error" not in r})
        raise InputError(f"{len(failed)} of {len(failed) + good} input files could not be read "
                         f"({', '.join(Path(f).name for f in failed[:5])}); the others got their output.")
