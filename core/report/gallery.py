"""Attention-map gallery: one example per domain (text tokens, image patches, spectrogram frames).

A task module takes part by implementing ``attention_example(batch, datamodule) -> dict`` with keys

* ``kind``: ``"tokens"`` | ``"patches"`` | ``"frames"``;
* ``attn``: ``(Nq, Nk)`` array, last encoder layer averaged over heads (or a cross-attention map);
* ``title``; optionally ``source`` (which layer and heads the map shows; default
  ``"last encoder layer, mean over heads"``); and per kind: ``labels`` / ``xlabels`` (token strings), ``image`` ``(H, W)`` with
  ``query_map`` ``(gh, gw)`` (attention of the pooled/class query over the patch grid),
  ``spectrogram`` ``(F, T)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from core.train.protocols import ShowsAttention  # noqa: E402

__all__ = ["attention_gallery", "domain_examples", "draw_example"]

PREFERENCE = [("sdpa", "sinusoidal"), ("sdpa", "rope"), ("sdpa", "learned")]


def _pick_runs(rows: list[dict]) -> dict[str, dict]:
    """One run per domain (the part of ``task`` before '/'), preferring sdpa with sinusoidal PE."""
    chosen: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["experiment"]):
        domain = str(row["task"]).split("/")[0]
        rank = next((i for i, p in enumerate(PREFERENCE) if (row.get("attention"), row.get("pe")) == p), 99)
        if domain not in chosen or rank < chosen[domain][0]:
            ckpt = row.get("best_checkpoint") or str(Path(row["run_dir"]) / "checkpoints" / "last.ckpt")
            if Path(ckpt).is_file():
                chosen[domain] = (rank, {**row, "ckpt": ckpt})
    return {d: r for d, (_, r) in chosen.items()}


@torch.no_grad()
def domain_examples(rows: list[dict], console: Console) -> list[dict[str, Any]]:
    from core.train.data import main_test_loader
    from core.train.run import load_for_predict

    examples = []
    for domain, row in sorted(_pick_runs(rows).items()):
        try:
            _, dm, module = load_for_predict(row["ckpt"])
            if not isinstance(module, ShowsAttention):
                console.print(f"gallery: {row['task']} has no attention_example; skipped")
                continue
            dm.setup("test")
            batch = next(iter(main_test_loader(dm)))
            ex = module.attention_example(batch, dm)
            ex["title"] = f"{row['experiment']} ({row.get('attention')}/{row.get('pe')})\n{ex.get('title', '')}"
            examples.append(ex)
        except Exception as exc:  # noqa: BLE001 - one broken domain must not sink the report
            console.print(f"[yellow]gallery: {row['experiment']} skipped ({type(exc).__name__}: {exc})[/]")
    return examples


SOURCE = "last encoder layer, mean over heads"


def draw_example(ax_top, ax, ex: dict) -> None:
    """Draw one example: its input on ``ax_top``, its map with a labelled colour scale on ``ax`` (also mas-demo's)."""
    attn = np.asarray(ex["attn"], dtype=np.float32)
    kind = ex["kind"]
    source = ex.get("source", SOURCE)
    if kind == "patches":
        ax_top.imshow(np.asarray(ex["image"]), cmap="gray")
        ax_top.set_title("input", fontsize=8)
        qm = np.asarray(ex["query_map"], dtype=np.float32)
        ax.imshow(np.asarray(ex["image"]), cmap="gray", extent=(0, 1, 1, 0))
        shown = ax.imshow(qm, cmap="inferno", alpha=0.6, extent=(0, 1, 1, 0))
        ax.set_title(f"pooled query over patches ({source})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    elif kind == "frames":
        ax_top.imshow(np.asarray(ex["spectrogram"]), origin="lower", aspect="auto", cmap="magma")
        ax_top.set_title("log-mel input", fontsize=8)
        shown = ax.imshow(attn, cmap="viridis", aspect="auto")
        ax.set_title(source, fontsize=7)
        ax.set_xlabel("key frame", fontsize=8)
        ax.set_ylabel("query frame", fontsize=8)
    else:
        ax_top.axis("off")
        ax_top.text(0.0, 0.5, " ".join(ex.get("xlabels") or ex.get("labels") or [])[:80], fontsize=8, wrap=True)
        shown = ax.imshow(attn, cmap="viridis", aspect="auto")
        ax.set_title(source, fontsize=7)
        labels_y, labels_x = ex.get("labels"), ex.get("xlabels") or ex.get("labels")
        if labels_y is not None and len(labels_y) <= 40:
            ax.set_yticks(range(len(labels_y)), labels_y, fontsize=6)
        if labels_x is not None and len(labels_x) <= 40:
            ax.set_xticks(range(len(labels_x)), labels_x, fontsize=6, rotation=90)
    ax_top.set_xticks([]) if kind != "tokens" else None
    bar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("attention weight", fontsize=7)
    bar.ax.tick_params(labelsize=6)


def attention_gallery(rows: list[dict], path: Path, *, console: Console) -> bool:
    """Draw the gallery to ``path``; False when no domain could give an example."""
    examples = domain_examples(rows, console)
    if not examples:
        return False
    fig, axes = plt.subplots(2, len(examples), figsize=(4.6 * len(examples), 6.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2.4]})
    for j, ex in enumerate(examples):
        draw_example(axes[0, j], axes[1, j], ex)
        axes[0, j].set_title(ex["title"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
