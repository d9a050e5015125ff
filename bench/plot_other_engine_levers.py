"""What each measured lever did to the spoken-digits WER on voices from other synthesis engines.

Reads ``bench/other_engine_levers.csv``, one row per lever and training seed: the change (an override where
there is one), the seed, the WER ``bench/other_engine_digits.py`` gave on SAM and on SVOX Pico, the scorer
(``bench``: ``mas-predict`` as it was, cutting each recording at every pause of 0.15 s and decoding the pieces
alone; ``piecewise``: a script, not kept, that decoded the same pieces, where the recipe's seeds score within
0.001 of the bench; ``whole``: a recording whole with its long pauses shortened; ``words``: ``mas-predict``
now, whole, and a lexicon search that ends inside a word keeps the whole words before it) and
which engines spoke the training set. Prints a table of means with 95 % Student-t intervals over seeds and
draws every seed as a dot beside its lever's mean and interval (``--png``), over a band for the first row's
interval (the eSpeak-only recipe every lever was measured against: each change is an override on it; the
recipe now adds ``data.sphinx_fraction=0.5 data.espeak_first_epochs=2 model.top_db=50 model.drop=0.0
model.freq_masks=0`` on the Sphinx engine's trajectories; rows after "the sampler fix" drew new batches every
epoch, rows naming the trajectories had them and trained uncapped, ``trainer.max_time=null``, unless the lever
names the cap). A WER on an engine that spoke part of the training set is drawn hollow: it is not a held-out
engine.

    python bench/plot_other_engine_levers.py [--csv other_engine_levers.csv] [--png other_engine_levers.png]
"""

from __future__ import annotations

import argparse
import csv
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.report.stats import cell_stats

HERE = Path(__file__).parent
ENGINES = {"sam": "SAM", "pico": "SVOX Pico"}
TARGET = 0.10


def read_levers(path: Path) -> dict[str, list[dict]]:
    """Rows grouped by lever, in the file's order."""
    levers: dict[str, list[dict]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            levers.setdefault(row["lever"], []).append(row)
    return levers


def wers(rows: list[dict], engine: str) -> list[float]:
    return [float(r[f"{engine}_wer"]) for r in rows]


def summary(rows: list[dict], engine: str) -> str:
    """``mean ± half-interval (n)``, or the single value when there is one seed."""
    return cell_stats(wers(rows, engine)).text(3)


def plot(levers: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(levers)
    fig, axes = plt.subplots(1, len(ENGINES), figsize=(13, 0.5 * len(names) + 1.4), sharey=True)
    for ax, (engine, title) in zip(axes, ENGINES.items(), strict=True):
        for y, name in enumerate(names):
            rows = levers[name]
            values = wers(rows, engine)
            seen = any(engine in r["trained_on"].split("+") for r in rows)
            colour = "tab:grey" if seen else "tab:blue"
            ax.scatter(values, [y] * len(values), s=18, facecolors="none" if seen else colour, edgecolors=colour,
                       zorder=3)
            if len(values) > 1:
                s = cell_stats(values)
                ax.errorbar(s.mean, y + 0.25, xerr=[[s.mean - s.low], [s.high - s.mean]], fmt="|", color=colour,
                            capsize=3)
        base = cell_stats(wers(levers[names[0]], engine))
        ax.axvspan(base.low, base.high, color="tab:blue", alpha=0.08, label=f"{names[0]}: 95% interval")
        ax.axvline(TARGET, color="tab:red", ls="--", lw=1, label=f"target {TARGET}")
        ax.set_title(f"{title} (WER, lower is better)")
        ax.set_xlim(0, 0.7)  # every seed's dot fits; a two-seed interval wider than that is cut at the edge
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), [textwrap.fill(n, 50) for n in names], fontsize=7)
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Spoken digits from other engines: dots are training seeds, bars 95% t intervals; "
                 "hollow = engine in training", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle above the panel titles
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=HERE / "other_engine_levers.csv")
    ap.add_argument("--png", type=Path, default=HERE / "other_engine_levers.png")
    args = ap.parse_args(argv)
    levers = read_levers(args.csv)
    table = Table(title="Spoken digits on other engines (mean ± 95% t over seeds)")
    for col in ("lever", "trained on", *ENGINES.values()):
        table.add_column(col)
    for name, rows in levers.items():
        table.add_row(name, rows[0]["trained_on"], *(summary(rows, e) for e in ENGINES))
    Console().print(table)
    plot(levers, args.png)
    print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
