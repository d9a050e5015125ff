"""Train short, test long: every trained cell of a preset with ``sizes`` re-tested at other input sizes.

A preset with ``sizes: [1, 1.5, 2, ...]`` has each trained cell's best checkpoint evaluated, without
fine-tuning, with ``data.size_ratio=r`` (each embedded datamodule of the preset reads it: longer
texts, larger canvases, higher resolution, longer utterances), once per evaluation variant of its PE
(``eval_variants``: e.g. RoPE as trained, with position interpolation, with NTK scaling). Results go
to ``<out>/extrapolation/<task>/<cell>/<variant>-x<r>/metrics.json``, outside ``runs/`` so the
grid report does not count them as runs, and :func:`write_extrapolation` turns them into
``extrapolation.csv`` (modality, task, pe, size_ratio, metric, mean, ci_low, ci_high, n, p_vs_best,
vs_best), one PNG per modality (metric against size ratio, one line per PE, a band over seeds) and
the Markdown section of the report (statistics as in :mod:`core.report.stats`).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.report.stats import ALPHA, cell_stats, versus_best

__all__ = ["MODALITIES", "SizeEval", "evaluate_sizes", "size_evals", "write_extrapolation"]

MODALITIES = {"nlp": "text", "vision": "images", "speech": "audio"}
COLUMNS = ["modality", "task", "pe", "size_ratio", "metric", "mean", "ci_low", "ci_high", "n", "p_vs_best", "vs_best"]

SizeEval = tuple[str, float, dict[str, Any], str]  # (variant, ratio, overrides, out dir)


def size_evals(task: str, slug: str, pe: str, sizes: list[float], variants: dict, root: Path,
               task_overrides: list[str] | None = None) -> list[SizeEval]:
    """The evaluations of one cell: every size for its PE as trained and for each of its ``variants[pe]``;
    ``task_overrides`` apply to every evaluation of the task (e.g. a faster test decoder)."""
    named = {pe: []} | {str(k): list(v or []) for k, v in (variants.get(pe) or {}).items()}
    out = []
    for name, overrides in named.items():
        assign = dict(o.split("=", 1) for o in [*(task_overrides or []), *overrides])
        for r in sizes:
            path = root / "extrapolation" / task.replace("/", "-") / slug / f"{name}-x{float(r):g}"
            out.append((name, float(r), {**assign, "data.size_ratio": float(r)}, str(path)))
    return out


def evaluate_sizes(run_dir: Path, evals: list[SizeEval]) -> int:
    """Run the evaluations still missing a ``metrics.json`` for the trained run in ``run_dir``; returns
    how many ran."""
    import yaml

    from core.train.run import evaluate, write_metrics

    record = json.loads((Path(run_dir) / "metrics.json").read_text())
    ckpt = record.get("best_checkpoint") or str(Path(run_dir) / "checkpoints" / "last.ckpt")
    ran = 0
    for variant, ratio, overrides, out in evals:
        if (Path(out) / "metrics.json").is_file():
            continue
        values = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in overrides.items()}
        Path(out).mkdir(parents=True, exist_ok=True)
        result = evaluate(ckpt, out, overrides=values)
        result.update(variant=variant, size_ratio=ratio, trained_pe=record.get("pe"), monitor=record.get("monitor"),
                      monitor_mode=record.get("monitor_mode"), overrides=overrides)
        write_metrics(Path(out), result)
        ran += 1
    return ran


def _rows(root: Path) -> list[dict[str, Any]]:
    from core.report.report import main_metric

    rows = []
    for f in sorted((root / "extrapolation").rglob("metrics.json")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "size_ratio" not in rec:
            continue
        metric, higher = main_metric(rec)
        # the recipe names the task people know (nlp/digit_order); the model task (nlp/classification) is shared
        rows.append({**rec, "task": rec.get("experiment") or rec["task"], "metric": metric, "higher": higher,
                     "value": float(rec.get(metric, math.nan))})
    return rows


def summarize_sizes(rows: list[dict]) -> list[dict[str, Any]]:
    """One line per (task, PE variant, size ratio): mean and interval over seeds, and the test against
    the best variant at that size."""
    cells: dict[tuple[str, float], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    meta: dict[str, tuple[str, bool]] = {}
    for r in rows:
        cells[(r["task"], r["size_ratio"])][r["variant"]][int(r["seed"])] = r["value"]
        meta[r["task"]] = (r["metric"], r["higher"])
    out = []
    for (task, ratio), by_variant in sorted(cells.items()):
        metric, higher = meta[task]
        best, p = versus_best({v: {s: x for s, x in d.items() if not math.isnan(x)} for v, d in by_variant.items()},
                              higher)
        for variant, seeds in sorted(by_variant.items()):
            s = cell_stats(list(seeds.values()))
            pv = p.get(variant, math.nan)
            verdict = "best" if variant == best else ("worse" if pv < ALPHA else "no significant difference")
            out.append({"modality": MODALITIES.get(task.split("/")[0], task.split("/")[0]), "task": task,
                        "pe": variant, "size_ratio": ratio, "metric": metric, "mean": s.mean, "ci_low": s.low,
                        "ci_high": s.high, "n": s.n, "p_vs_best": pv, "vs_best": verdict})
    return out


def _plot(summary: list[dict], modality: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in summary if r["modality"] == modality})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        lines = sorted({r["pe"] for r in summary if r["task"] == task})
        for pe in lines:
            pts = sorted((r["size_ratio"], r["mean"], r["ci_low"], r["ci_high"]) for r in summary
                         if r["task"] == task and r["pe"] == pe)
            x = [p[0] for p in pts]
            line, = ax.plot(x, [p[1] for p in pts], marker="o", ms=3, label=pe)
            if all(not math.isnan(p[2]) for p in pts):
                ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], color=line.get_color(), alpha=0.15)
        metric = next(r["metric"] for r in summary if r["task"] == task)
        ax.set(title=task, xlabel="input size / training size", ylabel=metric)
        ax.axvline(1.0, color="grey", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{modality}: trained at size 1, evaluated larger (mean, 95% band over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(summary: list[dict], images: list[str]) -> str:
    lines = ["## Extrapolation: trained at size 1, evaluated at larger sizes", "",
             "Mean ± half-width of the 95% interval over seeds; **bold** is the best PE at that size; "
             "the others are marked where a t-test over seeds says they are worse (p < 0.05).", ""]
    for task in sorted({r["task"] for r in summary}):
        rows = [r for r in summary if r["task"] == task]
        ratios = sorted({r["size_ratio"] for r in rows})
        lines += [f"### {task} ({rows[0]['metric']})", "",
                  "| pe | " + " | ".join(f"x{r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
        for pe in sorted({r["pe"] for r in rows}):
            cells = []
            for ratio in ratios:
                r = next((x for x in rows if x["pe"] == pe and x["size_ratio"] == ratio), None)
                if r is None:
                    cells.append("")
                    continue
                half = (r["ci_high"] - r["ci_low"]) / 2 if r["n"] > 1 else math.nan
                text = f"{r['mean']:.3f}" + ("" if math.isnan(half) else f" ± {half:.3f}")
                cells.append(f"**{text}**" if r["vs_best"] == "best" else text + (" (worse)" if r["vs_best"] == "worse"
                                                                                  else ""))
            lines.append(f"| {pe} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{i}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def write_extrapolation(root: Path, out_dir: Path) -> str | None:
    """``extrapolation.csv``, the PNGs and the report section from ``root/extrapolation``; None if empty."""
    rows = _rows(root)
    if not rows:
        return None
    summary = summarize_sizes(rows)
    with open(out_dir / "extrapolation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(summary)
    images = []
    for modality in sorted({r["modality"] for r in summary}):
        name = f"extrapolation_{modality}.png"
        _plot(summary, modality, out_dir / name)
        images.append(name)
    return _markdown(summary, images)
