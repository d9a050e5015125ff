"""Time to quality: seconds of fitting until the validation metric first reaches a recipe's bar,
ours against a peer at the same size and schedule, timed in the same run (one job at a time).

Peers: timm's ``VisionTransformer`` on ``vision/digits`` (``model=timm_vit``) and torchaudio's
``Conformer`` as the encoder of the same CTC recogniser on ``speech/spoken_digits``
(``model=torchaudio_conformer``). Other embedded recipes (``--recipes``) are timed without a peer.
Each run stops as soon as the bar is reached (``EarlyStopping(stopping_threshold=bar)``) and validates
every ``--val-every`` of an epoch, so the time is known to that resolution. Needs nothing but the
installed package; run it on an otherwise idle machine.

    python bench/time_to_quality.py [--recipes vision/digits speech/spoken_digits] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

#: recipe -> (monitored val metric, bar, higher is better, peer model config or None)
BARS = {
    "vision/digits": ("val/acc", 0.95, True, "timm_vit"),
    "speech/spoken_digits": ("val/wer", 0.08, False, "torchaudio_conformer"),
    "vision/digits_seg": ("val/miou", 0.70, True, None),
    "nlp/numbers_cls": ("val/acc", 0.93, True, None),
    "nlp/numbers_de": ("val/chrf", 95.0, True, None),
}


def time_to_bar(curve: list[dict], bar: float, higher: bool) -> float | None:
    """Seconds at the first validation whose value meets ``bar`` (None if none does)."""
    for point in sorted(curve, key=lambda p: p["step"]):
        if (point["value"] >= bar) if higher else (point["value"] <= bar):
            return float(point["seconds"])
    return None


def run(recipe: str, model: str | None, seed: int, args, out: Path) -> tuple[float | None, float]:
    """Train once (a fresh ``mas-train`` process); returns (seconds to the bar or None, seconds of fitting)."""
    metric, bar, higher, _ = BARS[recipe]
    run_dir = out / f"{recipe.replace('/', '-')}-{model or 'ours'}-s{seed}"
    cmd = [str(Path(sys.executable).parent / "mas-train"), f"experiment={recipe}", f"seed={seed}",
           *([f"model={model}"] if model else []), f"threads={args.threads}",
           f"+callbacks.early_stopping.stopping_threshold={bar}", f"trainer.val_check_interval={args.val_every}",
           "callbacks.progress_bar=null", "logger=none", "callbacks.lr_monitor=null", "trainer.limit_test_batches=1",
           f"hydra.run.dir={run_dir}", *args.extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[1:3])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    record = json.loads((run_dir / "metrics.json").read_text())
    return time_to_bar(record.get("curve") or [], bar, higher), float(record["train_seconds"])


def _fmt(times: list[float | None], fit: list[float]) -> str:
    reached = [t for t in times if t is not None]
    if len(reached) < len(times):
        return f"not reached in {max(fit):.0f} s ({len(reached)}/{len(times)} seeds)"
    return f"{statistics.fmean(reached):.1f}" + (f" ± {statistics.stdev(reached):.1f}" if len(reached) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["vision/digits", "speech/spoken_digits"], choices=list(BARS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine is otherwise idle)")
    ap.add_argument("--val-every", type=float, default=0.25, help="validate every this fraction of an epoch")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every run (smoke tests)")
    args = ap.parse_args(argv)
    console = Console()
    table = Table(title=f"seconds of fitting until the val metric reaches the bar ({args.threads} threads, "
                        f"seeds {args.seeds}, validation every {args.val_every} epoch)")
    for col in ("recipe", "bar", "ours s", "peer", "peer s", "ours / peer"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="mas-ttq-") as tmp:
        for recipe in args.recipes:
            metric, bar, higher, peer = BARS[recipe]
            ours, peers, fit_ours, fit_peer = [], [], [], []
            for seed in args.seeds:  # alternate ours and the peer, so drifting load hits both alike
                t, f = run(recipe, None, seed, args, Path(tmp))
                ours.append(t)
                fit_ours.append(f)
                if peer:
                    t, f = run(recipe, peer, seed, args, Path(tmp))
                    peers.append(t)
                    fit_peer.append(f)
            both = peer and None not in ours and None not in peers
            ratio = f"{statistics.fmean(ours) / statistics.fmean(peers):.2f}" if both else "-"
            table.add_row(recipe, f"{metric} {'>=' if higher else '<='} {bar}", _fmt(ours, fit_ours), peer or "-",
                          _fmt(peers, fit_peer) if peer else "-", ratio)
            console.print(f"done: {recipe}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
