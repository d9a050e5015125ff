"""mas-compare: grid expansion, resume, collecting and pivoting fabricated metrics, report_only."""

import csv
import json
from pathlib import Path

import pytest

from conftest import run_cli
from core.report.compare import Cell, expand_grid, launch_commands, pending
from core.report.report import build_report, collect, pivot


def _fake(root: Path, cell: Cell, value: float, metric: str = "acc", mode: str = "max") -> None:
    d = cell.run_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    rec = {"task": cell.task, "experiment": cell.task, "attention": cell.attention, "pe": cell.pe, "seed": cell.seed,
           "params": 1000, "train_seconds": 1.0, "train_samples_per_second": 100.0, "device": "cpu",
           "monitor": f"val/{metric}", "monitor_mode": mode, f"test/{metric}": value, f"val/{metric}": value,
           "curve": [{"step": s, "seconds": s / 10, "value": value * s / 30} for s in (10, 20, 30)]}
    (d / "metrics.json").write_text(json.dumps(rec))


def test_grid_expansion_skips_impossible_pairs():
    cells = expand_grid(["vision/digits", "nlp/numbers_cls"], ["sdpa", "linear"], ["rope", "alibi"], [0, 1])
    assert len(cells) == 2 * 2 * 2 * 2 - 2 * 2  # linear+alibi dropped for both tasks and seeds
    assert Cell("vision/digits", "linear", "alibi", 0) not in cells
    assert cells[0] == Cell("vision/digits", "sdpa", "rope", 0)


def test_resume_runs_only_missing_cells_as_multiruns(tmp_path):
    cells = expand_grid(["vision/digits"], ["sdpa"], ["sinusoidal", "rope", "none"], [0])
    _fake(tmp_path, cells[1], 0.9)
    todo = pending(cells, tmp_path)
    assert todo == [cells[0], cells[2]]
    (group, cmd), = launch_commands(todo, tmp_path, {"vision/digits": ["trainer.max_epochs=2"]}, "joblib", [])
    assert group == todo and "-m" in cmd
    assert "pe=sinusoidal,none" in cmd and "trainer.max_epochs=2" in cmd and "hydra/launcher=joblib" in cmd
    assert f"hydra.sweep.dir={tmp_path / 'runs' / 'vision-digits'}" in cmd


def test_collect_pivot_and_report(tmp_path):
    runs = tmp_path / "grid"
    cells = expand_grid(["vision/digits"], ["sdpa"], ["rope", "none"], [0, 1])
    for c, v in zip(cells, [0.9, 0.5, 0.8, 0.6]):
        _fake(runs, c, v)
    asr = Cell("speech/spoken_digits", "sdpa", "rope", 0)
    _fake(runs, asr, 0.12, metric="wer", mode="min")
    (runs / "junk").mkdir()
    (runs / "junk" / "metrics.json").write_text("{not json")
    rows = collect([runs])
    assert len(rows) == 5
    experiments, variants, cells_ = pivot(rows)
    assert variants == ["sdpa/none", "sdpa/rope"]
    assert sorted(cells_[("vision/digits", "sdpa/rope")]) == [0.8, 0.9]
    assert cells_[("speech/spoken_digits", "sdpa/rope")] == [0.12]

    out = tmp_path / "report"
    md = build_report([runs], out, gallery=False)
    text = md.read_text()
    half = 12.7062 * 0.070711 / 2 ** 0.5  # t(0.975, 1) * sd / sqrt(2)
    assert f"| vision/digits | test/acc | 0.5500 ± {half:.4f} (n=2) | 0.8500 ± {half:.4f} (n=2) |" in text
    assert "| speech/spoken_digits | test/wer | — | 0.1200 (n=1) |" in text
    assert "- **vision/digits**: best sdpa/rope; no significant difference from the best: sdpa/none (p=0.20)." in text
    assert "Student's t over seeds" in text
    for png in ("metric_by_variant.png", "throughput_params.png", "learning_curves.png"):
        assert f"]({png})" in text and (out / png).stat().st_size > 5000
    with open(out / "report.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    with open(out / "report_summary.csv") as fh:
        summary = {(r["experiment"], r["pe"]): r for r in csv.DictReader(fh)}
    rope = summary[("vision/digits", "rope")]
    assert float(rope["mean"]) == pytest.approx(0.85) and int(rope["n"]) == 2 and rope["vs_best"] == "best"
    assert float(rope["ci_low"]) == pytest.approx(0.85 - half, abs=1e-4)
    assert summary[("vision/digits", "none")]["vs_best"] == "no significant difference"


def test_report_only_cli(tmp_path):
    runs = tmp_path / "grid"
    for c, v in zip(expand_grid(["vision/digits"], ["sdpa"], ["rope", "none"], [0]), [0.9, 0.5]):
        _fake(runs, c, v)
    out = tmp_path / "rep"
    proc = run_cli("mas-compare", "report_only=true", f"runs=[{runs}]", f"out_dir={out}", "gallery=false",
                   f"hydra.run.dir={tmp_path}/h", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str((out / "report.md").resolve())
    assert "sdpa/rope" in proc.stdout
    bad = run_cli("mas-compare", "report_only=true", f"runs=[{tmp_path}/nothing]", f"hydra.run.dir={tmp_path}/h2",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


TINY = ["model.dim=32", "model.depth=1", "model.num_heads=2", "trainer.max_epochs=2", "trainer.max_time=null",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "callbacks.early_stopping=null", "callbacks.lr_monitor=null", "logger=none"]


def test_pool_trains_cells_in_workers_and_reports_a_failing_one(tmp_path):
    """Two one-thread workers train the grid in-process: each cell writes what mas-train writes (records,
    checkpoint, metrics.json with its learning curve and what its seed varies); a broken cell fails alone."""
    from core.report.pool import train_cells

    good = [Cell("vision/digits", "sdpa", pe, 1) for pe in ("rope", "none")]
    jobs = [(c.slug, [f"experiment={c.task}", f"pe={c.pe}", f"seed={c.seed}", *TINY], c.run_dir(tmp_path),
             tmp_path / f"{c.slug}.log") for c in good]
    jobs.append(("broken", ["experiment=vision/digits", *TINY, "model.num_heads=5"], tmp_path / "broken",
                 tmp_path / "broken.log"))
    seen = {}
    train_cells(jobs, workers=2, threads=1, on_done=lambda label, ok, line: seen.update({label: (ok, line)}))
    assert seen["broken"][0] is False and "not divisible by model.num_heads=5" in seen["broken"][1]
    for c in good:
        assert seen[c.slug][0] is True and seen[c.slug][1].startswith("test/acc ")
        rec = json.loads((c.run_dir(tmp_path) / "metrics.json").read_text())
        assert rec["pe"] == c.pe and rec["seed"] == 1
        assert rec["seed_varies"] == ["init", "data order", "train/val split"]
        assert [p["step"] for p in rec["curve"]] == [3, 6] and all(0 <= p["value"] <= 1 for p in rec["curve"])
        assert ("core.nn.pe.RoPE" in (c.run_dir(tmp_path) / ".hydra" / "config.yaml").read_text()) == (c.pe == "rope")
        assert (c.run_dir(tmp_path) / "checkpoints" / "last.ckpt").is_file()
    assert "Traceback" in (tmp_path / "broken.log").read_text()  # the log keeps the details
