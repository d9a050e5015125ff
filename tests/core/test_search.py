"""mas-train hparams_search=...: an Optuna study of tiny digits runs, picks its best trial, resumes, refuses bad input."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from conftest import QUIET, compose_cfg, run_cli
from core.train.errors import ConfigError

optuna = pytest.importorskip("optuna")

from core.train.search import run_search  # noqa: E402 - only with optuna installed

TINY = ["model.dim=32", "model.num_heads=2", "model.mlp_ratio=1.0", "threads=1", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.limit_test_batches=1"]


def _search(tmp_path, n_trials: int, *extra: str) -> dict:
    overrides = [*QUIET, *TINY, "hparams_search=digits_optuna", f"hparams_search.study_dir={tmp_path / 'study'}",
                 f"hparams_search.n_trials={n_trials}", *extra]
    cfg = compose_cfg(overrides, tmp_path / "outer")
    return run_search(cfg, overrides)


def _trial_metrics(study_dir) -> dict[int, dict]:
    return {int(p.parent.name.split("_")[1]): json.loads(p.read_text()) for p in study_dir.glob("trial_*/metrics.json")}


def test_search_picks_the_best_trial_and_resumes_with_one_more(tmp_path, capsys):
    info = _search(tmp_path, 3)
    study_dir = tmp_path / "study"
    runs = _trial_metrics(study_dir)
    assert sorted(runs) == [0, 1, 2] and (study_dir / "study.db").is_file()
    values = {n: r["val/acc"] for n, r in runs.items() if r["search_state"] == "complete"}  # read independently
    best = json.loads((study_dir / "best.json").read_text())
    assert best["value"] == pytest.approx(max(values.values())) and values[best["trial"]] == best["value"]
    assert best == json.loads(json.dumps(info)) and best["metric"] == "val/acc" and best["direction"] == "maximize"
    params = runs[best["trial"]]
    assert params["pe"] == best["params"]["pe"]  # the trial really trained its suggested group option
    assert (study_dir / "best.yaml").is_file() and (study_dir / "trial_0" / ".hydra" / "config.yaml").is_file()
    out = capsys.readouterr().out
    assert out.count("trial ") >= 3 and f"best trial {best['trial']}: val/acc=" in out

    stamps = {p: p.stat().st_mtime_ns for p in study_dir.glob("trial_*/metrics.json")}
    _search(tmp_path, 4)  # the same command with n_trials=4: exactly one more trial, the others untouched
    assert sorted(_trial_metrics(study_dir)) == [0, 1, 2, 3]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert len(study.trials) == 4

    # a trial left running by a search killed mid-trial (trial 0's params, its checkpoint): the next run continues it
    first = study.trials[0]
    study.enqueue_trial(first.params)
    study.ask(first.distributions)
    (study_dir / "trial_4" / "checkpoints").mkdir(parents=True)
    shutil.copy(study_dir / "trial_0" / "checkpoints" / "last.ckpt", study_dir / "trial_4" / "checkpoints")
    _search(tmp_path, 5)
    assert "resume=true" not in (study_dir / "trial_4" / ".hydra" / "overrides.yaml").read_text()
    assert _trial_metrics(study_dir)[4]["val/acc"] == runs[0]["val/acc"]  # resumed at its end: trial 0's numbers
    trials = optuna.load_study(study_name="digits", storage=f"sqlite:///{study_dir / 'study.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4 + ["FAIL", "COMPLETE"]
    assert trials[5].user_attrs["continues"] == 4 and _trial_metrics(study_dir)[4]["search_trial"] == 5

    with pytest.raises(ConfigError, match="started with other command-line overrides"):  # another base config, same study
        _search(tmp_path, 5, "seed=1")

    from core.train.overrides import check_command_line  # best.yaml is a config mas-train can run
    check_command_line("train", ["--config-dir", str(study_dir), "--config-name", "best"], "mas-train")


def test_bad_search_space_is_one_sentence(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^hparams_search.params.model.depth.type must be float, int or categ"):
        _search(tmp_path, 1, "hparams_search.params.model.depth.type=choice")
    with pytest.raises(ConfigError, match="set on the command line and searched"):
        _search(tmp_path, 1, "model.depth=1")
    with pytest.raises(ConfigError, match="'rope3' is not an option of the pe group"):
        _search(tmp_path, 1, "hparams_search.params.pe.choices=[rope,rope3]")
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the 'hpo' extra were not installed
    with pytest.raises(ConfigError, match=r"install the 'hpo' extra: pip install -e '\.\[hpo\]'"):
        _search(tmp_path, 1)
    assert not (tmp_path / "study" / "study.db").exists()


def test_cli_unknown_key_in_the_space_exits_2_with_one_sentence(tmp_path):
    proc = run_cli("mas-train", "hparams_search=digits_optuna", f"hparams_search.study_dir={tmp_path}/s",
                   "+hparams_search.params.model.dimm={type:int,low:16,high:32}", env={"MAS_OUTPUT_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: hparams_search.params: model.dimm is not a key of the training config; "
                                "did you mean model.dim"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_pruned_trials_stop_early_and_are_marked(tmp_path):
    """A pruner that prunes at the first report: each trial stops after its first epoch, tests, says 'pruned'."""
    with pytest.raises(ConfigError, match="no trial of the study .* completed"):
        _search(tmp_path, 2, "trainer.max_epochs=3", "~hparams_search.pruner",
                "+hparams_search.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.1}")
    runs = _trial_metrics(tmp_path / "study")
    assert sorted(runs) == [0, 1] and {r["search_state"] for r in runs.values()} == {"pruned"}
    assert {r["epochs"] for r in runs.values()} == {1} and all("test/acc" in r for r in runs.values())
