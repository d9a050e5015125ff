"""Cross-domain report from ``metrics.json`` files: per-run and summary CSVs (mean, 95% interval, n, test
against the best), Markdown, PNG plots (:mod:`core.report.plots`), attention gallery."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.report.plots import plot_cost, plot_curves, plot_metric
from core.report.stats import ALPHA, METHOD, cell_stats, versus_best
from core.train.errors import InputError

__all__ = ["build_report", "collect", "main_metric", "pivot", "summarize"]

COLUMNS = ["experiment", "task", "attention", "pe", "seed", "seed_varies", "metric", "value", "params",
           "train_seconds", "train_samples_per_second", "device", "run_dir"]
SUMMARY_COLUMNS = ["experiment", "metric", "attention", "pe", "mean", "ci_low", "ci_high", "n", "p_vs_best",
                   "vs_best"]


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


def summarize(rows: list[dict]) -> list[dict[str, Any]]:
    """One row per (experiment, variant): mean, 95% interval, n, and the test against the task's best
    (:mod:`core.report.stats`)."""
    by_cell: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        value = float(r["value"])
        if not math.isnan(value):
            by_cell[(r["experiment"], _variant(r))][int(r.get("seed", 0))] = value
    out = []
    for exp in sorted({e for e, _ in by_cell}):
        higher = main_metric(next(r for r in rows if r["experiment"] == exp))[1]
        cells = {v: seeds for (e, v), seeds in by_cell.items() if e == exp}
        best, pvalues = versus_best(cells, higher)
        for v in sorted(cells):
            c = cell_stats(list(cells[v].values()))
            p = pvalues.get(v, math.nan)
            verdict = ("best" if v == best else "untested (too few seeds)" if math.isnan(p)
                       else "worse" if p < ALPHA else "no significant difference")
            out.append({"experiment": exp, "metric": next(r["metric"] for r in rows if r["experiment"] == exp),
                        "variant": v, "attention": v.split("/")[0], "pe": v.split("/")[1], "mean": c.mean,
                        "ci_low": c.low, "ci_high": c.high, "n": c.n, "p_vs_best": p, "vs_best": verdict,
                        "text": c.text()})
    return out


def _write_csv(rows: list[dict], path: Path) -> None:
    extra = sorted({k for r in rows for k in r if k.startswith(("val/", "test/"))})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS + extra, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["experiment"], _variant(r), r.get("seed", 0))):
            w.writerow({**r, "seed_varies": "+".join(r.get("seed_varies") or [])})


def _write_summary(summary: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(summary)


def _verdicts(summary: list[dict], exp: str) -> str:
    cells = [s for s in summary if s["experiment"] == exp]
    best = next(s["variant"] for s in cells if s["vs_best"] == "best")
    worse = [f"{s['variant']} (p={s['p_vs_best']:.3g})" for s in cells if s["vs_best"].startswith("worse")]
    same = [f"{s['variant']} (p={s['p_vs_best']:.2f})" for s in cells if s["vs_best"] == "no significant difference"]
    parts = [f"best {best}"]
    if worse:
        parts.append("significantly worse: " + ", ".join(worse))
    if same:
        parts.append("no significant difference from the best: " + ", ".join(same))
    return "; ".join(parts)


def _markdown(rows: list[dict], summary: list[dict], images: list[str], failed: list[str], notes: list[str]) -> str:
    experiments = sorted({s["experiment"] for s in summary})
    variants = sorted({s["variant"] for s in summary})
    text = {(s["experiment"], s["variant"]): s["text"] for s in summary}
    by_varies: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_varies[", ".join(r.get("seed_varies") or ["init", "data order"])].add(r["experiment"])
    varies = [f"{what} ({', '.join(sorted(exps))})" for what, exps in sorted(by_varies.items())]
    lines = ["# Cross-domain attention / PE comparison", "",
             f"{len(rows)} runs. Main metric per task: the test twin of the monitored metric (higher is better "
             f"except WER). Cells: mean ± half-width of the 95% interval (n seeds). {METHOD}. What a seed varies: "
             f"{'; '.join(varies)}; test splits are fixed.", *(["", *notes] if notes else []), "",
             "| experiment | metric | " + " | ".join(variants) + " |",
             "|---|---|" + "---|" * len(variants)]
    for exp in experiments:
        metric = next(s["metric"] for s in summary if s["experiment"] == exp)
        lines.append(f"| {exp} | {metric} | " + " | ".join(text.get((exp, v), "—") for v in variants) + " |")
    lines += ["", "## Which variants differ", ""] + [f"- **{exp}**: {_verdicts(summary, exp)}." for exp in experiments]
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


def _console_table(summary: list[dict], console: Console) -> None:
    experiments = sorted({s["experiment"] for s in summary})
    variants = sorted({s["variant"] for s in summary})
    text = {(s["experiment"], s["variant"]): s["text"] for s in summary}
    table = Table(title="main test metric per task x variant: mean ± 95% CI (n seeds)")
    table.add_column("experiment")
    table.add_column("metric")
    for v in variants:
        table.add_column(v, justify="right")
    for exp in experiments:
        metric = next(s["metric"] for s in summary if s["experiment"] == exp)
        table.add_row(exp, metric, *[text.get((exp, v), "—") for v in variants])
    console.print(table)
    for exp in experiments:
        console.print(f"{exp}: {_verdicts(summary, exp)}")


def build_report(sources: list[Path], out_dir: Path, *, console: Console | None = None, gallery: bool = True,
                 notes: list[str] | None = None) -> Path:
    """Write ``report.md``, ``report.csv`` and the PNGs into ``out_dir``; returns the ``report.md`` path."""
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = collect(sources)
    if not rows:
        raise InputError(f"no metrics.json found under {', '.join(map(str, sources))}.")
    failed = [f"{r['experiment']} {_variant(r)} seed {r.get('seed')}: {r['metric']} missing"
              for r in rows if not isinstance(r["value"], (int, float)) or math.isnan(float(r["value"]))]
    _write_csv(rows, out_dir / "report.csv")
    summary = summarize(rows)
    _write_summary(summary, out_dir / "report_summary.csv")
    images = ["metric_by_variant.png", "throughput_params.png"]
    plot_metric(summary, out_dir / images[0])
    plot_cost(rows, out_dir / images[1], _variant)
    if plot_curves(rows, out_dir / "learning_curves.png", _variant):
        images.append("learning_curves.png")
    if gallery:
        from core.report.gallery import attention_gallery

        if attention_gallery(rows, out_dir / "attention_gallery.png", console=console):
            images.append("attention_gallery.png")
    (out_dir / "report.md").write_text(_markdown(rows, summary, images, failed, notes or []))
    _console_table(summary, console)
    return out_dir / "report.md"
