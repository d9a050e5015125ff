"""The wheel carries the whole config tree, and an installed copy runs outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import CONF_DIR, ROOT, run_cli


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_holds_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {str(p.relative_to(CONF_DIR.parent)) for p in CONF_DIR.rglob("*.yaml")}
    assert len(want) > 50 and not want - names, sorted(want - names)[:5]


def test_installed_copy_trains_from_an_unrelated_directory(wheel, tmp_path):
    """The wheel's packages alone (no source tree on the path) compose pkg://conf and train."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys, core; assert core.__file__.startswith(sys.argv[1]), core.__file__; "
            "sys.argv = ['mas-train', *sys.argv[2:]]; from core.train.cli import train_main; train_main()")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code, str(site), "trainer.fast_dev_run=true", "callbacks.progress_bar=null",
                           "model.dim=16", "model.depth=1", "model.num_heads=2", f"hydra.run.dir={elsewhere}/run"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (elsewhere / "run" / "metrics.json").is_file()


def test_user_config_dir_adds_an_experiment(tmp_path):
    """A user's own folder extends the packaged tree (Hydra's --config-dir) without touching the package."""
    mine = tmp_path / "my_conf" / "experiment" / "mine"
    mine.mkdir(parents=True)
    (mine / "tiny_digits.yaml").write_text("# @package _global_\ndefaults:\n  - /experiment/vision/digits\n  - _self_\n"
                                           "model: {dim: 16, depth: 1, num_heads: 2}\n")
    proc = run_cli("mas-train", "--config-dir", str(tmp_path / "my_conf"), "experiment=mine/tiny_digits",
                   "trainer.fast_dev_run=true", "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path}/r",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"experiment": "mine/tiny_digits"' in (tmp_path / "r" / "metrics.json").read_text()
