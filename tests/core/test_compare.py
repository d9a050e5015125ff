"""mas-compare: grid expansion, resume, collecting and pivoting fabricated metrics, report_only."""

import csv
import json
from pathlib import Path

from conftest import run_cli
from core.report.compare import Cell, expand_grid, launch_commands, pending
from core.report.report import build_report, collect, pivot


def _fake(root: Path, cell: Cell, value: float, metric: str = "acc", mode: str = "max") -> None:
    d = cell.run_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    rec = {"task": cell.task, "experiment": cell.task, "attention": cell.attention, "pe": cell.pe, "seed": cell.seed,
           "params": 1000, "train_seconds": 1.0, "train_samples_per_second": 100.0, "device": "cpu",
           "monitor": f"val/{metric}", "monitor_mode": mode, f"test/{metric}": value, f"val/{metric}": value}
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
    assert "| vision/digits | test/acc | 0.5500 ± 0.0707 | 0.8500 ± 0.0707 |" in text
    assert "| speech/spoken_digits | test/wer | — | 0.1200 |" in text
    for png in ("metric_by_variant.png", "throughput_params.png"):
        assert f"]({png})" in text and (out / png).stat().st_size > 5000
    with open(out / "report.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5


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
