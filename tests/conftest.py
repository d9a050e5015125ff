"""Shared test helpers: compose configs on CPU with tiny budgets, run the CLIs in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"

# embedded datasets are cached once per machine (CI clones reuse the cache between tests)
os.environ.setdefault("MAS_CACHE_DIR", str(Path.home() / ".cache" / "mas"))

# Under pytest-xdist (`-n 2`) each worker, and every CLI it starts, computes on one thread: two processes
# with torch's default of one thread per core oversubscribe a 2-core CPU and run several times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)


def load_bench(name: str):
    """The script ``bench/<name>.py`` as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_cfg(overrides: list[str] | tuple[str, ...] = (), out_dir: str | Path | None = None,
                config_name: str = "train"):
    """Compose ``conf/<config_name>.yaml`` as ``mas-train`` would, with Hydra's runtime set."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import core.train.cli  # noqa: F401 - registers the resolvers

    GlobalHydra.instance().clear()
    extra = [] if out_dir is None else [f"hydra.runtime.output_dir={out_dir}", f"hydra.run.dir={out_dir}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides) + extra, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


QUIET = ["callbacks.progress_bar=null", "callbacks.lr_monitor=null", "callbacks.early_stopping=null", "logger=none"]


def train_cfg(overrides, out_dir):
    """Compose and train in-process; returns the metrics record (``metrics.json`` is written too)."""
    from core.train.run import train

    cfg = compose_cfg(list(QUIET) + list(overrides), out_dir)
    return train(cfg, out_dir)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script (``mas-train`` ...) of this environment in a subprocess."""
    exe = Path(sys.executable).parent / args[0]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d
