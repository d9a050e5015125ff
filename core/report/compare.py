"""``mas-compare``: run a grid of (task x attention x pe x seed) as Hydra multiruns, then report.

Each grid cell trains in ``<out_dir>/runs/<task>/<attention>-<pe>-s<seed>/``. Cells that already
hold a ``metrics.json`` are skipped, so re-running the same command resumes a partial grid. With
``launcher=pool`` (the default) a pool of worker processes trains the cells on this machine
(:mod:`core.report.pool`); with a Hydra launcher (basic, joblib, or SLURM through submitit) the jobs
are ``mas-train -m`` sweeps, one per task, attention and seed, sweeping the missing PEs.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.train.cli import CONF, guarded
from core.train.errors import ConfigError
from core.train.overrides import check_command_line

__all__ = ["Cell", "expand_grid", "launch_commands", "main", "pending"]



@functools.lru_cache(maxsize=None)
def combination_problem(task: str, attention: str, pe: str) -> str | None:
    """Why ``attention=`` with ``pe=`` cannot train ``experiment=task`` (the start-up check's sentence), or None."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from core.train.validate import combination_error

    overrides = [f"experiment={task}", f"attention={attention}", f"pe={pe}"]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (mas-compare itself)
        cfg = compose("train", overrides=overrides)
    else:
        with initialize_config_module("conf", version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    return combination_error(cfg, names=(attention, pe))


@dataclass(frozen=True)
class Cell:
    task: str
    attention: str
    pe: str
    seed: int

    @property
    def slug(self) -> str:
        return f"{self.attention}-{self.pe}-s{self.seed}"

    def run_dir(self, root: Path) -> Path:
        return root / "runs" / self.task.replace("/", "-") / self.slug


def expand_grid(tasks: Iterable[str], attention: Iterable[str], pe: Iterable[str], seeds: Iterable[int]) -> list[Cell]:
    """All cells of the grid, in a fixed order, without combinations that cannot work."""
    return [Cell(t, a, p, int(s)) for t in tasks for a in attention for s in seeds for p in pe
            if combination_problem(t, a, p) is None]


def pending(cells: list[Cell], root: Path) -> list[Cell]:
    """Cells whose run directory has no ``metrics.json`` yet."""
    return [c for c in cells if not (c.run_dir(root) / "metrics.json").is_file()]


def launch_commands(cells: list[Cell], root: Path, task_overrides: dict[str, list[str]], launcher: str,
                    extra: list[str]) -> list[tuple[list[Cell], list[str]]]:
    """One ``mas-train -m`` command per (task, attention, seed), sweeping the PEs still missing."""
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.task, c.attention, c.seed), []).append(c)
    exe = str(Path(sys.executable).parent / "mas-train")
    commands = []
    for (task, attn, seed), group in groups.items():
        sweep_dir = group[0].run_dir(root).parent
        cmd = [exe, "-m", f"experiment={task}", f"attention={attn}", f"pe={','.join(c.pe for c in group)}",
               f"seed={seed}", *task_overrides.get(task, []), "callbacks.progress_bar=null",
               f"hydra.sweep.dir={sweep_dir}",
               "hydra.sweep.subdir=${hydra:runtime.choices.attention}-${hydra:runtime.choices.pe}-s${seed}", *extra]
        if launcher != "basic":
            cmd.append(f"hydra/launcher={launcher}")
        commands.append((group, cmd))
    return commands


def _cell_overrides(c: Cell, task_overrides: dict[str, list[str]], extra: list[str],
                    pe_overrides: dict | None = None) -> list[str]:
    by_task = (pe_overrides or {}).get(c.pe) or {}
    return [f"experiment={c.task}", f"attention={c.attention}", f"pe={c.pe}", f"seed={c.seed}",
            *task_overrides.get(c.task, []), *(by_task.get("all") or []), *(by_task.get(c.task) or []),
            "callbacks.progress_bar=null", *extra]


def _pe_overrides(cfg: DictConfig) -> dict:
    """The preset's ``pe_overrides``: ``{pe: {task or 'all': [overrides]}}`` for the cells of one PE (keys such
    as ``pe.direction`` exist in one PE's config only, so they cannot go in a task's list)."""
    found = cfg.preset.get("pe_overrides")
    if not found:
        return {}
    if cfg.launcher != "pool":
        raise ConfigError(f"preset={cfg.preset.name} sets pe_overrides, which only launcher=pool applies (a Hydra "
                          f"sweep shares one command line between PEs); drop launcher={cfg.launcher}.")
    from omegaconf import OmegaConf

    return OmegaConf.to_container(found, resolve=True)


def _size_evals(cfg: DictConfig, cells: list[Cell], root: Path) -> dict[Cell, list]:
    """Each cell's evaluations at other input sizes when the preset lists ``sizes`` (else none)."""
    sizes = [float(r) for r in (cfg.preset.get("sizes") or [])]
    if not sizes:
        return {}
    if cfg.launcher != "pool":
        raise ConfigError(f"preset={cfg.preset.name} evaluates other input sizes after training, which only "
                          f"launcher=pool does; drop launcher={cfg.launcher}.")
    from omegaconf import OmegaConf

    from core.report.extrapolation import size_evals

    variants = OmegaConf.to_container(cfg.preset.get("eval_variants") or {}, resolve=True)
    per_task = OmegaConf.to_container(cfg.preset.get("eval_overrides") or {}, resolve=True)
    return {c: size_evals(c.task, c.slug, c.pe, sizes, variants, root, per_task.get(c.task)) for c in cells}


def run_grid(cfg: DictConfig, root: Path, console: Console) -> float:
    """Train the preset's missing cells; returns the wall-clock seconds this took."""
    preset = cfg.preset
    task_overrides = {t: list(v or []) for t, v in preset.tasks.items()}
    cells = expand_grid(task_overrides, preset.attention, preset.pe, preset.seeds)
    evals = _size_evals(cfg, cells, root)
    _pe_overrides(cfg)  # refuse a launcher that cannot apply them before anything trains
    todo = [c for c in cells if c in pending(cells, root) or any(not (Path(e[3]) / "metrics.json").is_file()
                                                               for e in evals.get(c, []))]
    how = (f"{cfg.workers} workers x {cfg.threads_per_worker} thread(s)" if cfg.launcher == "pool"
           else f"launcher {cfg.launcher}")
    console.print(f"[bold]mas-compare[/] preset={preset.name}: {len(cells)} runs, {len(cells) - len(todo)} already "
                  f"done ({how})")
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    t0 = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("training", total=len(cells), completed=len(cells) - len(todo))
        if cfg.launcher == "pool":
            from core.report.pool import train_cells

            def done(label: str, ok: bool, line: str) -> None:
                progress.advance(bar)
                progress.console.print(f"{'[green]done[/]' if ok else '[red]failed[/]'} {label}: {line}")

            per_pe = _pe_overrides(cfg)
            jobs = [(f"{c.task} {c.slug}", _cell_overrides(c, task_overrides, list(cfg.extra_overrides), per_pe),
                     c.run_dir(root), logs / f"{c.task.replace('/', '-')}-{c.slug}.log", evals.get(c)) for c in todo]
            train_cells(jobs, int(cfg.workers), int(cfg.threads_per_worker), done)
            return time.perf_counter() - t0
        for group, cmd in launch_commands(todo, root, task_overrides, cfg.launcher, list(cfg.extra_overrides)):
            label = f"{group[0].task} {group[0].attention} s{group[0].seed} pe={','.join(c.pe for c in group)}"
            progress.update(bar, description=label)
            log = logs / f"{group[0].task.replace('/', '-')}-{group[0].attention}-s{group[0].seed}.log"
            with open(log, "a") as fh:
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ})
            done = [c for c in group if (c.run_dir(root) / "metrics.json").is_file()]
            progress.advance(bar, len(done))
            if proc.returncode != 0 or len(done) < len(group):
                missing = ", ".join(c.slug for c in group if c not in done)
                progress.console.print(f"[red]{group[0].task}: runs {missing} failed[/] (see {log})")
    return time.perf_counter() - t0


@hydra.main(version_base="1.3", config_path=CONF, config_name="compare")
def _compare(cfg: DictConfig) -> None:
    from core.report.report import build_report

    def go():
        console = Console()
        root = Path(cfg.out_dir).expanduser() if cfg.out_dir else Path(HydraConfig.get().runtime.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        if cfg.report_only:
            if not cfg.runs:
                raise ConfigError("report_only=true needs runs=[<run dir or a folder of run dirs>, ...].")
            sources = [Path(str(r)).expanduser() for r in cfg.runs]
            for s in sources:
                if not s.exists():
                    raise ConfigError(f"runs: {s} does not exist.")
            notes = []
        else:
            seconds = run_grid(cfg, root, console)
            sources = [root / "runs"]
            how = (f"{cfg.workers} workers x {cfg.threads_per_worker} thread(s)" if cfg.launcher == "pool"
                   else f"launcher {cfg.launcher}")
            notes = [f"Training of this grid's missing runs took {seconds / 60:.1f} min wall-clock ({how}, "
                     f"preset {cfg.preset.name})."]
        report = build_report(sources, root, console=console, gallery=bool(cfg.gallery), notes=notes)
        from core.report.extrapolation import write_extrapolation

        for grid_root in {s.parent if s.name == "runs" else s for s in sources}:
            section = write_extrapolation(grid_root, root)
            if section:
                report.write_text(report.read_text() + "\n" + section)
                break
        print(report.resolve())

    guarded(go)


def main() -> None:
    guarded(lambda: check_command_line("compare", sys.argv[1:], "mas-compare"))
    _compare()


if __name__ == "__main__":
    main()
