"""Cross-domain report from ``metrics.json`` files: CSV, Markdown, PNG plots, attention gallery."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from core.train.errors import InputError  # noqa: E402

__all__ = ["build_report", "collect", "main_metric", "pivot"]

COLUMNS = ["experiment", "task", "attention", "pe", "seed", "metric", "value", "params", "train_seconds",
           "train_samples_per_second", "device", "run_dir"]


def main_metric(record: dict[str, Any]) -> tuple[str, bool]:
    """The test metric a run is ranked by (``test/`` twin of its monitor) and whether higher is better."""
    monitor = str(record.get("monitor") or "val/acc")
    name = "test/" + monitor.split("/", 1)[-1]
    return name, str(record.get("monitor_mode", "max")) != "min"


def collect(sources: list[Path]) -> list[dict[str, Any]]:
    """One row per ``metrics.json`` under ``sources`` (files, run dirs, or folders of them)."""
    files: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_file() and src.name == "metrics.json":
            files.append(src)
        elif src.is_dir():
            files += sorted(src.rglob("metrics.json"))
    rows = []
    for f in sorted(set(files)):
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a half-written or foreign file is not a run
        if not isinstance(rec, dict) or "task" not in rec:
            continue
        metric, _ = main_metric(rec)
        rows.append({**rec, "metric": metric, "value": rec.get(metric, float("nan")), "run_dir": str(f.parent)})
    return rows


def _variant(row: dict) -> str:
    return f"{row.get('attention', '?')}/{row.get('pe', '?')}"


def pivot(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], list[float]]]:
    """Experiments x variants -> list of main-metric values (one per seed)."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        cells[(r["experiment"], _variant(r))].append(float(r["value"]))
    experiments = sorted({r["experiment"] for r in rows})
    variants = sorted({_variant(r) for r in rows})
    return experiments, variants, cells


def _fmt(values: list[float] | None) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _write_csv(rows: list[dict], path: Path) -> None:
    extra = sorted({k for r in rows for k in r if k.startswith(("val/", "test/"))})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS + extra, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["experiment"], _variant(r), r.get("seed", 0))):
            w.writerow(r)


def _plot_metric(rows: list[dict], path: Path) -> None:
    experiments, variants, cells = pivot(rows)
    fig, axes = plt.subplots(1, len(experiments), figsize=(3.2 * len(experiments), 3.4), squeeze=False)
    for ax, exp in zip(axes[0], experiments):
        vals = [cells.get((exp, v), []) for v in variants]
        means = [statistics.mean(v) if v else 0.0 for v in vals]
        errs = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in vals]
        ax.bar(range(len(variants)), means, yerr=errs, color=plt.cm.tab10.colors[: len(variants)])
        metric = next(r["metric"] for r in rows if r["experiment"] == exp)
        ax.set_title(f"{exp}\n{metric}", fontsize=9)
        ax.set_xticks(range(len(variants)), variants, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_cost(rows: list[dict], path: Path) -> None:
    experiments, variants, _ = pivot(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(1, len(variants))
    for key, ax, label in (("train_samples_per_second", axes[0], "training samples / s"),
                           ("params", axes[1], "parameters")):
        for j, v in enumerate(variants):
            ys = []
            for exp in experiments:
                vals = [float(r.get(key, 0)) for r in rows if r["experiment"] == exp and _variant(r) == v]
                ys.append(statistics.mean(vals) if vals else 0.0)
            ax.bar([i + j * width for i in range(len(experiments))], ys, width, label=v)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(experiments))], experiments, rotation=20, ha="right",
                      fontsize=8)
        ax.set_ylabel(label)
        ax.set_yscale("log")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(rows: list[dict], images: list[str], failed: list[str]) -> str:
    experiments, variants, cells = pivot(rows)
    lines = ["# Cross-domain attention / PE comparison", "",
             f"{len(rows)} runs. Main metric per task: the test twin of the monitored metric "
             "(higher is better except WER). Mean ± std over seeds where there are several.", "",
             "| experiment | metric | " + " | ".join(variants) + " |",
             "|---|---|" + "---|" * len(variants)]
    for exp in experiments:
        metric = next(r["metric"] for r in rows if r["experiment"] == exp)
        lines.append(f"| {exp} | {metric} | " + " | ".join(_fmt(cells.get((exp, v))) for v in variants) + " |")
    lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    lines += ["", "## Runs", "", "| experiment | attention | pe | seed | metric | value | params | train s | samples/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["experiment"], _variant(r), r.get("seed", 0))):
        lines.append(f"| {r['experiment']} | {r.get('attention')} | {r.get('pe')} | {r.get('seed')} | {r['metric']} | "
                     f"{float(r['value']):.4f} | {int(r.get('params', 0)):,} | {float(r.get('train_seconds', 0)):.1f} | "
                     f"{float(r.get('train_samples_per_second', 0)):.0f} |")
    if failed:
        lines += ["", "## Missing metrics", ""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def _console_pivot(rows: list[dict], console: Console) -> None:
    experiments, variants, cells = pivot(rows)
    table = Table(title="main test metric per task x variant")
    table.add_column("experiment")
    table.add_column("metric")
    for v in variants:
        table.add_column(v, justify="right")
    for exp in experiments:
        metric = next(r["metric"] for r in rows if r["experiment"] == exp)
        table.add_row(exp, metric, *[_fmt(cells.get((exp, v))) for v in variants])
    console.print(table)


def build_report(sources: list[Path], out_dir: Path, *, console: Console | None = None, gallery: bool = True) -> Path:
    """Write ``report.md``, ``report.csv`` and the PNGs into ``out_dir``; returns the ``report.md`` path."""
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = collect(sources)
    if not rows:
        raise InputError(f"no metrics.json found under {', '.join(map(str, sources))}.")
    failed = [f"{r['experiment']} {_variant(r)} seed {r.get('seed')}: {r['metric']} missing"
              for r in rows if not isinstance(r["value"], (int, float)) or math.isnan(float(r["value"]))]
    _write_csv(rows, out_dir / "report.csv")
    images = ["metric_by_variant.png", "throughput_params.png"]
    _plot_metric(rows, out_dir / images[0])
    _plot_cost(rows, out_dir / images[1])
    if gallery:
        from core.report.gallery import attention_gallery

        if attention_gallery(rows, out_dir / "attention_gallery.png", console=console):
            images.append("attention_gallery.png")
    (out_dir / "report.md").write_text(_markdown(rows, images, failed))
    _console_pivot(rows, console)
    return out_dir / "report.md"
