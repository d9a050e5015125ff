"""Our speech encoder against torchaudio's Conformer at the same size, data, epochs, optimiser and schedule.

Both train the full ``speech/spoken_digits`` recipe in turn, seed by seed (alternating, so drifting load
hits both alike), in fresh ``mas-train`` processes; the peer is ``model=torchaudio_conformer`` (the same
front end, subsampling, augmentation and CTC head, torchaudio's encoder). Prints test WER and CER as
means with 95% intervals over the seeds, training seconds, parameter counts, and ours / peer ratios.
Run it on an otherwise idle machine.

    python bench/speech_peer.py [--seeds 0 1 2] [--extra model.augment=null]
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

RECIPE = "speech/spoken_digits"
METRICS = ("test/wer", "test/cer", "train_seconds")
COLUMNS = ("params", *METRICS)


def run(model: str | None, seed: int, args, out: Path) -> dict:
    """Train once; returns the run's metrics.json record."""
    run_dir = out / f"{model or 'ours'}-s{seed}"
    cmd = [str(Path(sys.executable).parent / "mas-train"), f"experiment={RECIPE}", f"seed={seed}",
           *([f"model={model}"] if model else []), f"threads={args.threads}", "callbacks.progress_bar=null",
           "logger=none", f"hydra.run.dir={run_dir}", *args.extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[1:4])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine is otherwise idle)")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for both runs (e.g. model.augment=null)")
    args = ap.parse_args(argv)
    from core.report.stats import cell_stats

    console = Console()
    results: dict[str, dict[str, list[float]]] = {s: {m: [] for m in COLUMNS} for s in ("ours", "peer")}
    with tempfile.TemporaryDirectory(prefix="mas-peer-") as tmp:
        for seed in args.seeds:
            for side, model in (("ours", None), ("peer", "torchaudio_conformer")):
                record = run(model, seed, args, Path(tmp))
                for m in COLUMNS:
                    results[side][m].append(float(record[m]))
                console.print(f"done: {side} seed {seed}: test/wer {record['test/wer']:.4f}, "
                              f"{record['train_seconds']:.0f} s")
    table = Table(title=f"{RECIPE}: ours vs torchaudio Conformer (seeds {args.seeds}, {args.threads} threads, "
                        "95% t-intervals)")
    for col in ("", *COLUMNS):
        table.add_column(col, justify="right")
    for side in ("ours", "peer"):
        table.add_row(side if side == "ours" else "torchaudio_conformer", f"{results[side]['params'][0] / 1e6:.2f}M",
                      *(cell_stats(results[side][m]).text(4 if m != "train_seconds" else 0) for m in METRICS))
    ratios = [statistics.fmean(results["ours"][m]) / max(statistics.fmean(results["peer"][m]), 1e-12) for m in COLUMNS]
    table.add_row("ours / peer", *(f"{r:.2f}" for r in ratios))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
