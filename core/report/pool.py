"""``mas-compare launcher=pool``: grid cells trained by a pool of worker processes on one machine.

Each worker is a long-lived process that trains one cell after another in-process (no interpreter
start-up or re-import per run), with ``threads_per_worker`` torch threads: two one-thread workers
keep a 2-core CPU busy without the slowdown of two multi-threaded processes competing for it. A run
writes what a ``mas-train`` run writes (``.hydra/`` records, checkpoints, ``metrics.json``) and its
output goes to ``<out_dir>/logs/<task>-<cell>.log``. A failing cell is reported and the grid goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

__all__ = ["train_cell", "train_cells"]


def _init_worker(threads: int) -> None:
    """Torch threads of this worker; on Linux the worker also dies with ``mas-compare`` (an interrupted
    grid must not leave orphans training on the cores)."""
    import torch

    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def train_cell(overrides: list[str], run_dir: str, log: str, evals: list | None = None) -> tuple[bool, str]:
    """Compose ``train`` with ``overrides`` and train it into ``run_dir`` (unless it holds a finished run),
    then run the size evaluations ``evals`` still missing (:mod:`core.report.extrapolation`); returns
    ``(ok, one line)``.

    The process's stdout/stderr (file descriptors, so Lightning's and torch's own writes too) go to
    ``log`` while the run lasts.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    import core.train.cli  # noqa: F401 - registers the config resolvers
    from core.train.run import train

    out = Path(run_dir)
    (out / ".hydra").mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            if (out / "metrics.json").is_file():
                import json

                record = json.loads((out / "metrics.json").read_text())
            else:
                GlobalHydra.instance().clear()
                with initialize_config_module(config_module="conf", version_base="1.3"):
                    cfg = compose("train", overrides=[*overrides, f"hydra.run.dir={out}",
                                                      f"hydra.runtime.output_dir={out}"], return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)
                OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                               out / ".hydra" / "config.yaml")
                (out / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
                record = train(cfg, out)
            metric = str(record.get("monitor", "")).replace("val/", "test/", 1)
            line = f"{metric} {record.get(metric, float('nan')):.4f} in {record['train_seconds']:.0f} s"
            if evals:
                from core.report.extrapolation import evaluate_sizes

                line += f", {evaluate_sizes(out, evals)} size evaluations"
            return True, line
        except BaseException as exc:  # noqa: BLE001 - one cell's failure must not end the grid
            import traceback

            traceback.print_exc()
            return False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def train_cells(jobs: list[tuple], workers: int, threads: int, on_done: Callable[[str, bool, str], None]) -> float:
    """Train ``(label, overrides, run_dir, log[, evals])`` jobs on ``workers`` processes; ``on_done(label, ok,
    line)`` is called as each finishes. Returns the wall-clock seconds of the whole pool."""
    t0 = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited torch thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(train_cell, [*job[1], f"threads={threads}"], str(job[2]), str(job[3]),
                               job[4] if len(job) > 4 else None): job[0] for job in jobs}
        for future in as_completed(futures):
            try:
                ok, line = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (OOM killer) fails its cell only
                ok, line = False, f"worker died: {type(exc).__name__}"
            on_done(futures[future], ok, line)
    return time.perf_counter() - t0
