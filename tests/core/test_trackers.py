"""logger=mlflow / logger=wandb: offline trackers beside the CSV log, the same numbers, no network."""

from __future__ import annotations

import csv
import json
import socket
import sys

import pytest

from conftest import compose_cfg
from core.train.errors import ConfigError

TINY = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.mlp_ratio=1.0", "threads=1",
        "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=1", "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null", "callbacks.early_stopping=null"]


def _train(tmp_path, logger: str) -> dict:
    from core.train.run import train

    out = tmp_path / "run"
    cfg = compose_cfg([*TINY, f"logger={logger}", f"paths.log_dir={tmp_path / 'outputs'}"], out)
    return train(cfg, out)


def _csv_series(path, key: str) -> dict[int, float]:
    with open(path) as fh:
        return {int(r["step"]): float(r[key]) for r in csv.DictReader(fh) if r.get(key)}


def test_mlflow_store_holds_the_runs_metrics(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    record = _train(tmp_path, "[csv,mlflow]")
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "vision-digits"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["run_dir"] == str(tmp_path / "run") and run.data.tags["pe"] == "sinusoidal"
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/acc")}
    assert len(logged) == 2 and logged == pytest.approx(_csv_series(tmp_path / "run" / "logs" / "metrics.csv", "val/acc"))
    assert logged[max(logged)] == pytest.approx(record["val/acc"])
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (test_acc,) = client.get_metric_history(run.info.run_id, "test/acc")
    assert test_acc.value == pytest.approx(stored["test/acc"])
    assert client.get_metric_history(run.info.run_id, "train/loss_step")


def test_wandb_offline_run_is_written_without_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # any request would go to a closed local port
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    attempts = []
    real_connect = socket.socket.connect

    def local_only(sock, address):  # this process may talk to wandb's local service, nothing else
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError("network disabled by the test")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    import wandb

    _train(tmp_path, "[csv,wandb]")
    wandb.finish()
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), list((tmp_path / "run").rglob("*"))
    assert attempts == []


@pytest.mark.parametrize("package, logger", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_tracker_names_the_extra(package, logger, monkeypatch, tmp_path):
    from core.train import trackers

    monkeypatch.setitem(sys.modules, package, None)
    factory = trackers.mlflow_logger if logger == "mlflow" else trackers.wandb_logger
    with pytest.raises(ConfigError, match=rf"^logger={logger} needs the {package} package; install the 'trackers' extra"):
        factory(store_dir=str(tmp_path), experiment_name="x") if logger == "mlflow" else factory()
