"""Training spine: metrics.json, mas-eval, DDP on 2 CPU processes, resume after SIGKILL, NaN, bad checkpoints."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import QUIET, run_cli, train_cfg
from core.train.errors import InputError
from core.train.tasks import NonFiniteLossError

SMALL = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.mlp_ratio=1.0"]
FIELDS = {"task", "experiment", "attention", "pe", "seed", "params", "train_seconds", "train_samples_per_second",
          "device", "val/acc", "val/loss", "test/acc", "test/loss"}


def test_metrics_json_and_mas_eval_agree(out_dir, tmp_path):
    record = train_cfg([*SMALL, "trainer.max_epochs=2", "pe=rope"], out_dir)
    stored = json.loads((out_dir / "metrics.json").read_text())
    assert FIELDS <= set(stored) and stored == json.loads(json.dumps(record))
    assert stored["experiment"] == "vision/digits" and stored["pe"] == "rope" and stored["attention"] == "sdpa"
    assert 1000 < stored["params"] < 100_000 and stored["train_samples_per_second"] > 0
    assert (out_dir / "checkpoints" / "last.ckpt").is_file()
    proc = run_cli("mas-eval", f"ckpt_path={stored['best_checkpoint']}", "override=['data.batch_size=50']",
                   f"hydra.run.dir={tmp_path}/eval", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ev["test/acc"] == pytest.approx(stored["test/acc"], abs=1e-6)
    assert ev["pe"] == "rope" and ev["task"] == "vision/classification"


def test_bf16_mixed_on_cpu(out_dir):
    record = train_cfg([*SMALL, "trainer.max_epochs=1", "trainer.precision=bf16-mixed", "trainer.limit_train_batches=3"], out_dir)
    assert record["precision"] == "bf16-mixed" and record["test/acc"] >= 0.0


def test_ddp_two_cpu_processes(tmp_path):
    run = tmp_path / "ddp"
    proc = run_cli("mas-train", "trainer=ddp_cpu", "trainer.max_epochs=2", *SMALL, *QUIET, f"hydra.run.dir={run}",
                   cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = dict(re.findall(r"\[rank (\d)\] config sha256=([0-9a-f]{16})", proc.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]  # both ranks composed the same config
    files = list(tmp_path.rglob("metrics.json"))
    assert files == [run / "metrics.json"]  # written once, by rank 0
    m = json.loads(files[0].read_text())
    assert m["world_size"] == 2 and 0.0 <= m["test/acc"] <= 1.0 and m["device"] == "cpu"


def _train_args(run: Path) -> list[str]:
    return ["mas-train", *SMALL, *QUIET, "trainer.max_epochs=6", "trainer.deterministic=true",
            "data.batch_size=16", f"hydra.run.dir={run}"]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    a = train_cfg(_train_args(tmp_path / "ref")[1:-1], tmp_path / "ref")  # uninterrupted, in-process

    run = tmp_path / "killed"
    exe = Path(sys.executable).parent / "mas-train"
    proc = subprocess.Popen([str(exe), *_train_args(run)[1:]], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    size = -1
    while last.exists() and last.stat().st_size != size:  # the first last.ckpt is completely written
        size = last.stat().st_size
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # during epoch 1 of 6
    proc.wait()
    assert last.exists() and not (run / "metrics.json").exists(), "the kill landed after the run finished"

    resumed = run_cli(*_train_args(run), "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    b = json.loads((run / "metrics.json").read_text())
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert b["epochs"] == a["epochs"] == 6


class PoisonAfterFirstEpoch:
    """Test-only callback: turn the weights to NaN once the first epoch has been checkpointed."""

    def __new__(cls):
        import lightning as L

        class _Poison(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == 1:
                    with torch.no_grad():
                        for p in pl_module.parameters():
                            p.fill_(float("nan"))

        return _Poison()


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(out_dir):
    with pytest.raises(NonFiniteLossError, match="training loss became nan"):
        train_cfg([*SMALL, "trainer.max_epochs=3", "+callbacks.poison._target_=test_spine.PoisonAfterFirstEpoch"], out_dir)
    last = out_dir / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert not (out_dir / "metrics.json").exists()


def test_corrupt_missing_and_foreign_checkpoints(out_dir, tmp_path):
    train_cfg([*SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2"], out_dir)
    good = out_dir / "checkpoints" / "last.ckpt"
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[:5000])
    proc = run_cli("mas-eval", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path}/e1", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        f"error: checkpoint {bad} is truncated or corrupt and cannot be read."
    proc = run_cli("mas-eval", f"ckpt_path={tmp_path}/nope.ckpt", f"hydra.run.dir={tmp_path}/e2", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    foreign = torch.load(good, weights_only=True)
    foreign["mas_config"]["task"] = "speech/asr"
    torch.save(foreign, tmp_path / "foreign.ckpt")
    with pytest.raises(InputError, match="is for task 'speech/asr', not 'vision/classification'"):
        train_cfg([*SMALL, f"ckpt_path={tmp_path}/foreign.ckpt", "trainer.max_epochs=1"], tmp_path / "r2")


@pytest.mark.slow
def test_compile_trains_and_checkpoint_loads_eagerly(out_dir, tmp_path):
    """compile=true (torch.compile, ~1-2 min on this CPU): same checkpoint keys as an eager run."""
    record = train_cfg([*SMALL, "compile=true", "trainer.max_epochs=1", "trainer.limit_train_batches=5"], out_dir)
    keys = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"].keys()
    assert not any("_orig_mod" in k for k in keys)
    proc = run_cli("mas-eval", f"ckpt_path={out_dir}/checkpoints/last.ckpt", f"hydra.run.dir={tmp_path}/e", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= record["test/acc"] <= 1.0


def test_no_logger_trains_without_the_learning_rate_monitor(out_dir):
    """logger=none with the default callbacks used to stop in Lightning's LearningRateMonitor check."""
    record = train_cfg([*SMALL, "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=2"], out_dir)
    assert record["test/acc"] >= 0.0 and (out_dir / "checkpoints" / "last.ckpt").is_file()


def test_lightning_refusal_of_a_callback_is_one_sentence_naming_it(tmp_path):
    proc = run_cli("mas-train", *SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "+callbacks.swa._target_=lightning.pytorch.callbacks.StochasticWeightAveraging",
                   "+callbacks.swa.swa_lrs=-1", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    assert proc.returncode == 2 and "error: callbacks.swa: The `swa_lrs` should" in proc.stderr
    assert "Traceback" not in proc.stderr
