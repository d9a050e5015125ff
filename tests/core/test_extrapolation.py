"""Evaluation at other input sizes: the jobs a preset asks for, the pool running them after training,
the statistics and plots of extrapolation.csv, and mas-eval's size_ratio."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from scipy import stats

from core.report.compare import Cell
from core.report.extrapolation import size_evals, write_extrapolation
from core.train.errors import ConfigError

TINY = ["model.dim=32", "model.depth=1", "model.num_heads=2", "trainer.max_epochs=1", "trainer.max_time=null",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "callbacks.early_stopping=null",
        "callbacks.lr_monitor=null", "logger=none", "model.pe_resample=extrapolate"]
VARIANTS = {"rope": {"rope+pi": ["model.pe.scaling=linear"], "rope+ntk": ["model.pe.scaling=ntk"]}}


def test_size_evals_cover_every_size_and_rope_variant(tmp_path):
    rope = size_evals("vision/digits", "sdpa-rope-s0", "rope", [1, 2], VARIANTS, tmp_path)
    assert [(v, r) for v, r, _, _ in rope] == [("rope", 1.0), ("rope", 2.0), ("rope+pi", 1.0), ("rope+pi", 2.0),
                                               ("rope+ntk", 1.0), ("rope+ntk", 2.0)]
    assert rope[3][2] == {"model.pe.scaling": "linear", "data.size_ratio": 2.0}
    assert Path(rope[3][3]) == tmp_path / "extrapolation" / "vision-digits" / "sdpa-rope-s0" / "rope+pi-x2"
    assert len(size_evals("vision/digits", "sdpa-none-s0", "none", [1, 2], VARIANTS, tmp_path)) == 2


def test_pool_tests_a_trained_cell_at_other_sizes_once(tmp_path):
    from core.report.pool import train_cells

    cell = Cell("vision/digits", "sdpa", "rope", 0)
    evals = size_evals(cell.task, cell.slug, cell.pe, [1, 2], VARIANTS, tmp_path)
    job = (cell.slug, [f"experiment={cell.task}", "pe=rope", "seed=0", *TINY], cell.run_dir(tmp_path),
           tmp_path / "cell.log", evals)
    seen = {}
    train_cells([job], workers=1, threads=1, on_done=lambda label, ok, line: seen.update({label: (ok, line)}))
    assert seen[cell.slug][0] is True and seen[cell.slug][1].endswith("6 size evaluations"), seen
    recs = {(r["variant"], r["size_ratio"]): r for r in
            (json.loads((Path(e[3]) / "metrics.json").read_text()) for e in evals)}
    assert set(recs) == {(v, r) for v in ("rope", "rope+pi", "rope+ntk") for r in (1.0, 2.0)}
    for rec in recs.values():
        assert 0.0 <= rec["test/acc"] <= 1.0 and rec["trained_pe"] == "rope" and rec["monitor"] == "val/acc"
    # inside the trained size every scaling is the plain model: the same predictions
    assert recs[("rope", 1.0)]["test/acc"] == recs[("rope+pi", 1.0)]["test/acc"] == recs[("rope+ntk", 1.0)]["test/acc"]
    train_cells([job], workers=1, threads=1, on_done=lambda label, ok, line: seen.update({label: (ok, line)}))
    assert seen[cell.slug][1].endswith("0 size evaluations")  # neither retrained nor re-evaluated


def _fake_eval(root: Path, task: str, variant: str, seed: int, ratio: float, value: float, metric: str, mode: str):
    d = root / "extrapolation" / task.replace("/", "-") / f"sdpa-{variant}-s{seed}" / f"{variant}-x{ratio:g}"
    d.mkdir(parents=True)
    rec = {"task": task, "seed": seed, "pe": variant, "variant": variant, "size_ratio": ratio,
           "monitor": f"val/{metric}", "monitor_mode": mode, f"test/{metric}": value}
    (d / "metrics.json").write_text(json.dumps(rec))


def test_extrapolation_csv_statistics_plots_and_markdown(tmp_path):
    values = {("rope", 1.0): [0.95, 0.96, 0.97], ("rope", 2.0): [0.90, 0.91, 0.93],
              ("sinusoidal", 1.0): [0.96, 0.95, 0.97], ("sinusoidal", 2.0): [0.60, 0.55, 0.58]}
    for (variant, ratio), vals in values.items():
        for seed, v in enumerate(vals):
            _fake_eval(tmp_path, "nlp/digit_order", variant, seed, ratio, v, "acc", "max")
            _fake_eval(tmp_path, "speech/spoken_digits", variant, seed, ratio, 1 - v, "wer", "min")
    section = write_extrapolation(tmp_path, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "extrapolation.csv")))
    assert len(rows) == 8 and {r["modality"] for r in rows} == {"text", "audio"}
    for r in rows:
        vals = values[(r["pe"], float(r["size_ratio"]))]
        vals = vals if r["metric"] == "test/acc" else [1 - v for v in vals]
        half = stats.t.ppf(0.975, 2) * statistics.stdev(vals) / math.sqrt(3)
        assert float(r["mean"]) == pytest.approx(statistics.fmean(vals))
        assert float(r["ci_high"]) - float(r["ci_low"]) == pytest.approx(2 * half)
        assert r["n"] == "3"
    verdict = {(r["task"], r["pe"], float(r["size_ratio"])): r["vs_best"] for r in rows}
    assert verdict[("nlp/digit_order", "rope", 2.0)] == "best"
    assert verdict[("nlp/digit_order", "sinusoidal", 2.0)] == "worse"
    assert verdict[("speech/spoken_digits", "rope", 2.0)] == "best"  # lower WER is better
    assert verdict[("nlp/digit_order", "rope", 1.0)] != "worse"  # 0.96 vs 0.96: no difference
    assert (tmp_path / "extrapolation_text.png").stat().st_size > 5000
    assert (tmp_path / "extrapolation_audio.png").is_file()
    assert "### nlp/digit_order (test/acc)" in section and "| x1 | x2 |" in section
    assert write_extrapolation(tmp_path / "empty", tmp_path) is None


def test_size_ratio_needs_a_datamodule_that_builds_other_sizes():
    from core.train.run import _check_sizes

    cfg = OmegaConf.create({"data": {"_target_": "nlp.data.modules.TextClassificationDataModule"}})
    with pytest.raises(ConfigError, match="no test split at other sizes"):
        _check_sizes(cfg, "x.ckpt")
    _check_sizes(OmegaConf.create({"data": {"_target_": "vision.data.digits.DigitsDataModule"}}), "x.ckpt")


def test_extrapolate_preset_cells_compose_with_their_pe_overrides():
    """Every cell of preset=extrapolate (seed 0) composes as a training config; pe_overrides reach only their PE
    (and task), and a launcher that cannot apply them is refused before anything trains."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from core.report.compare import _cell_overrides, _pe_overrides, expand_grid

    GlobalHydra.instance().clear()
    with initialize_config_module("conf", version_base="1.3"):
        cfg = compose("compare", overrides=["preset=extrapolate"])
        tasks = {t: list(v) for t, v in cfg.preset.tasks.items()}
        per_pe = _pe_overrides(cfg)
        cells = expand_grid(tasks, cfg.preset.attention, cfg.preset.pe, [0])
        assert {c.pe for c in cells if c.task == "nlp/digit_order"} == {"sinusoidal", "learned", "rope", "alibi",
                                                                         "none"}
        assert {c.pe for c in cells if c.task == "vision/digits_seg"} >= {"rope_mixed"}
        for c in cells:
            train = compose("train", overrides=_cell_overrides(c, tasks, [], per_pe))
            if c.pe == "alibi":
                assert train.pe.direction == 1.0
            elif c.pe == "learned":
                assert train.pe.init_std == (0.7 if c.task == "nlp/digit_order" else 0.02)
        with pytest.raises(ConfigError, match="only launcher=pool"):
            _pe_overrides(compose("compare", overrides=["preset=extrapolate", "launcher=basic"]))
    GlobalHydra.instance().clear()
