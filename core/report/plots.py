"""The comparison report's PNGs: metric by variant with 95% intervals, cost, and learning curves."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_cost", "plot_curves", "plot_metric"]


def _colours(variants: list[str]) -> dict[str, tuple]:
    return {v: plt.cm.tab10.colors[i % 10] for i, v in enumerate(variants)}


def plot_metric(summary: list[dict], path: Path) -> None:
    """One panel per task: each variant's mean with its 95% interval as an error bar; the best is outlined."""
    experiments = sorted({s["experiment"] for s in summary})
    variants = sorted({s["variant"] for s in summary})
    colour = _colours(variants)
    fig, axes = plt.subplots(1, len(experiments), figsize=(3.3 * len(experiments), 3.6), squeeze=False)
    for ax, exp in zip(axes[0], experiments):
        cells = [s for s in summary if s["experiment"] == exp]
        for i, s in enumerate(sorted(cells, key=lambda s: s["variant"])):
            err = None if math.isnan(s["ci_low"]) else [[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]]
            ax.bar(i, s["mean"], yerr=err, capsize=3, color=colour[s["variant"]],
                   edgecolor="black" if s["vs_best"] == "best" else "none", linewidth=1.5)
            ax.text(i, 0, f"n={s['n']}", ha="center", va="bottom", fontsize=6, color="white")
        names = [s["variant"] for s in sorted(cells, key=lambda s: s["variant"])]
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{exp}\n{cells[0]['metric']} (mean, 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost(rows: list[dict], path: Path, variant_of) -> None:
    """Training throughput and parameter count per task and variant (log scale)."""
    experiments = sorted({r["experiment"] for r in rows})
    variants = sorted({variant_of(r) for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(1, len(variants))
    for key, ax, label in (("train_samples_per_second", axes[0], "training samples / s"),
                           ("params", axes[1], "parameters")):
        for j, v in enumerate(variants):
            ys = []
            for exp in experiments:
                vals = [float(r.get(key, 0)) for r in rows if r["experiment"] == exp and variant_of(r) == v]
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


def _band(curves: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeds' curves on a shared x grid (linear interpolation inside the range every seed covers): x,
    mean, lowest and highest seed. Where the seeds' ranges do not overlap (one validation each, or runs
    stopped at different times), the i-th validations of the seeds are averaged instead."""
    lo = max(c[0][key] for c in curves)
    hi = min(c[-1][key] for c in curves)
    if hi > lo:
        grid = np.linspace(lo, hi, 50)
        ys = np.stack([np.interp(grid, [p[key] for p in c], [p["value"] for p in c]) for c in curves])
        return grid, ys.mean(0), ys.min(0), ys.max(0)
    n = min(len(c) for c in curves)
    xs = np.array([[c[i][key] for c in curves] for i in range(n)]).mean(1)
    ys = np.array([[c[i]["value"] for c in curves] for i in range(n)])
    return xs, ys.mean(1), ys.min(1), ys.max(1)


def plot_curves(rows: list[dict], path: Path, variant_of) -> bool:
    """Per task, the monitored validation metric against fitting seconds and against steps: one line per
    variant (mean over seeds) and a band from the lowest to the highest seed. False if no run has a curve."""
    with_curve = [r for r in rows if len(r.get("curve") or []) >= 1]
    if not with_curve:
        return False
    experiments = sorted({r["experiment"] for r in with_curve})
    colour = _colours(sorted({variant_of(r) for r in rows}))
    fig, axes = plt.subplots(len(experiments), 2, figsize=(9, 2.8 * len(experiments)), squeeze=False)
    for (ax_t, ax_s), exp in zip(axes, experiments):
        runs = [r for r in with_curve if r["experiment"] == exp]
        for v in sorted({variant_of(r) for r in runs}):
            curves = [sorted(r["curve"], key=lambda p: p["step"]) for r in runs if variant_of(r) == v]
            for ax, key in ((ax_t, "seconds"), (ax_s, "step")):
                x, mean, low, high = _band(curves, key)
                ax.plot(x, mean, color=colour[v], label=f"{v} (n={len(curves)})", lw=1.4, marker="o" if len(x) < 6
                        else None, ms=3)
                if len(x) > 1:
                    ax.fill_between(x, low, high, color=colour[v], alpha=0.2, lw=0)
                else:  # one validation per run: the seeds' range as an error bar
                    ax.errorbar(x, mean, yerr=[mean - low, high - mean], color=colour[v], capsize=3, lw=1)
        metric = str(runs[0].get("monitor") or "val metric")
        ax_t.set_ylabel(f"{exp}\n{metric}", fontsize=8)
        ax_t.set_xlabel("seconds of fitting", fontsize=8)
        ax_s.set_xlabel("optimizer steps", fontsize=8)
        ax_s.legend(fontsize=6, loc="best")
    fig.suptitle("learning curves: mean over seeds, band = lowest to highest seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
