"""Hyper-parameter search: ``mas-train hparams_search=<name>`` runs an Optuna study in this process.

hydra-optuna-sweeper is not used: its newest release (1.3.0) pins ``optuna<3``, whose SQLite storage breaks
under SQLAlchemy 2. Here each trial composes the run's own config (the same command-line overrides, the same
search file) plus the trial's suggested values, and trains it with :func:`core.train.run.train` into
``<study_dir>/trial_<n>``. The study lives in ``<study_dir>/study.db`` (Optuna's RDB storage on SQLite), so
re-running the command continues it: finished trials are kept and ``n_trials`` counts all of them; a trial cut
short by a kill continues from its ``last.ckpt``. At the end ``best.json`` and ``best.yaml`` (the best trial's
whole config: ``mas-train --config-dir <study_dir> --config-name best``) are written.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from core.train.errors import ConfigError, InputError
from core.train.run import train, write_metrics
from core.train.search_space import (
    distribution, dotted_keys, import_optuna, leaves, override_key, override_value, param_overrides)
from core.train.tasks import NonFiniteLossError

__all__ = ["TrialPruning", "run_search"]

DIRECTIONS = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}
_LIVE_TRIALS: dict[int, Any] = {}  # trial number -> the optuna Trial this process is training (for TrialPruning)


class TrialPruning(L.Callback):
    """Report the monitored metric to the live Optuna trial after each validation and stop the run when the
    pruner says so (the run then tests its best checkpoint and writes ``metrics.json`` as usual).

    The trial is looked up by number in this process, so a process that does not hold it (a ddp_spawn
    worker, a trial directory resumed by hand) trains as if the callback were absent.
    """

    def __init__(self, trial: int, metric: str) -> None:
        self.trial_number = int(trial)
        self.metric = metric
        self._last_epoch = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trial = _LIVE_TRIALS.get(self.trial_number)
        value = trainer.callback_metrics.get(self.metric)
        # the pruner's step is the epoch: it lines trials up even when the batch size is searched
        if trial is None or trainer.sanity_checking or value is None or trainer.current_epoch == self._last_epoch:
            return
        self._last_epoch = trainer.current_epoch
        trial.report(float(value), step=trainer.current_epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", trainer.current_epoch)
            trainer.should_stop = True


@contextmanager
def _config_source() -> Iterator[None]:
    """Compose from the app's own search path (``--config-dir`` included) when Hydra is running, else from conf."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_module(config_module="conf", version_base="1.3"):
        yield


def _compose(config_name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """The training config of one trial: the search file stays in the composition (its global keys apply to
    every trial), then the ``hparams_search`` node is dropped so the trial is a plain training run."""
    from hydra import compose

    where = override_value(str(run_dir))
    cfg = compose(config_name, overrides=[*overrides, f"hydra.runtime.output_dir={where}", f"hydra.run.dir={where}"],
                  return_hydra_config=True)
    with open_dict(cfg):
        cfg.pop("hparams_search", None)
    return cfg


def _plain(cfg: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def _device_count(trainer: DictConfig) -> int:
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if str(devices) in ("auto", "-1"):
        on_cpu = str(trainer.get("accelerator", "auto")) == "cpu" or not torch.cuda.is_available()
        return 1 if on_cpu else torch.cuda.device_count()
    return int(devices)


def _single_process(cfg: DictConfig) -> bool:
    """True when trials train in this process; a launcher that re-runs the program per rank is refused."""
    trainer = cfg.trainer
    strategy = trainer.get("strategy", "auto")
    text = json.dumps(OmegaConf.to_container(strategy)) if OmegaConf.is_config(strategy) else str(strategy)
    many = any(w in text.lower() for w in ("ddp", "fsdp", "deepspeed")) or _device_count(trainer) > 1 \
        or int(trainer.get("num_nodes", 1) or 1) > 1
    if many and "spawn" not in text.lower():
        raise ConfigError("hparams_search trains its trials inside this process and cannot run under a strategy "
                          f"that re-launches the program (trainer.strategy={text}); use one device or trainer=ddp_spawn.")
    return not many


def _process_alive(host: str, pid: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here: assume the other machine is still at it
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid()


@contextmanager
def _study_lock(study_dir: Path) -> Iterator[None]:
    """One process per study: a trial left running in the database is then known to be cut short."""
    path = study_dir / "search.lock"
    me = f"{socket.gethostname()} {os.getpid()}"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, me.encode())
        os.close(fd)
    except FileExistsError:
        host, _, pid = path.read_text().strip().partition(" ")
        if _process_alive(host, pid):
            raise ConfigError(f"another mas-train (pid {pid} on {host}) is running the study in {study_dir}; wait "
                              f"for it, or delete {path} if that process is gone.") from None
        path.write_text(me)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip()
    return text.splitlines()[0] if text else type(root).__name__


def _instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    from hydra.utils import instantiate

    if node is None:
        return None
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a bad sampler/pruner entry is the user's, in one sentence
        raise ConfigError(f"hparams_search.{key}: {_first_line(exc).rstrip('.')}.") from None


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class _Study:
    """One ``hparams_search`` config turned into an Optuna study on disk, run trial after trial."""

    def __init__(self, optuna, cfg: DictConfig, overrides: list[str], config_name: str) -> None:
        self.optuna, self.config_name = optuna, config_name
        search = cfg.hparams_search
        self.name = str(search.get("study_name") or "").strip()
        if not self.name or not search.get("study_dir"):
            raise ConfigError("hparams_search needs a study_name and a study_dir.")
        self.dir = Path(str(search.study_dir)).expanduser().resolve()
        n_trials = search.get("n_trials")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"hparams_search.n_trials must be a positive integer, not {n_trials!r}.")
        self.n_trials = n_trials
        self.metric = str(OmegaConf.select(cfg, "monitor.metric", default="") or "")
        mode = search.get("direction") or OmegaConf.select(cfg, "monitor.mode", default="max")
        if not self.metric or str(mode) not in DIRECTIONS:
            raise ConfigError(f"hparams_search needs monitor.metric and a direction (max or min), not {mode!r}.")
        self.direction = DIRECTIONS[str(mode)]
        # the command line minus the search's own keys: what every trial shares, and what a resume must repeat
        self.overrides = list(overrides)
        self.fixed = sorted(o for o in overrides if override_key(o).split(".")[0] != "hparams_search")
        if "resume" in {override_key(o) for o in self.fixed}:
            raise ConfigError("resume= continues one run; a search continues when its command is run again.")
        self.spec = leaves(OmegaConf.to_container(search.get("params") or {}, resolve=True))
        if not self.spec:
            raise ConfigError("hparams_search.params declares no parameter to search.")
        self.space = {k: distribution(optuna, k, v) for k, v in self.spec.items()}
        self._check_keys(cfg)
        self.prune = search.get("pruner") is not None and _single_process(cfg)
        if search.get("pruner") is not None and not self.prune:
            print("note: pruning is off: ddp_spawn workers cannot report to the trial held by this process.")
        self.sampler_cfg, self.pruner_cfg = search.get("sampler"), search.get("pruner")

    def _check_keys(self, cfg: DictConfig) -> None:
        """Every searched key is a key of the training config or a config group, and not also fixed."""
        groups = set(HydraConfig.get().runtime.choices)
        known = set(dotted_keys(OmegaConf.to_container(_plain(cfg), resolve=False)))
        for name, spec in self.spec.items():
            if name in groups:
                if spec["type"] != "categorical":
                    raise ConfigError(f"hparams_search.params.{name}: {name} is a config group; search it with "
                                      "type: categorical and option names as choices.")
                self._check_group_choices(name, spec["choices"])
            elif name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                hint = f"did you mean {' or '.join(near)}?" if near else "name keys as on the command line, e.g. model.dim."
                raise ConfigError(f"hparams_search.params: {name} is not a key of the training config; {hint}")
        both = sorted({override_key(o) for o in self.fixed} & set(self.spec))
        if both:
            raise ConfigError(f"{both[0]} is set on the command line and searched in hparams_search.params; drop one.")

    def _check_group_choices(self, group: str, choices: list) -> None:
        for choice in choices:  # now, not at trial 17: a wrong option name ends the search before any training
            try:
                _compose(self.config_name, [*self.overrides, f"{group}={override_value(choice)}"], self.dir)
            except Exception as exc:  # noqa: BLE001 - any composition failure is a bad choice
                raise ConfigError(f"hparams_search.params.{group}: {choice!r} is not an option of the {group} group "
                                  f"({_first_line(exc).rstrip('.')}).") from None

    def open(self):
        url = f"sqlite:///{self.dir / 'study.db'}"
        try:
            study = self.optuna.create_study(storage=url, study_name=self.name, direction=self.direction,
                                             pruner=_instantiate(self.pruner_cfg, "pruner"), load_if_exists=True)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable database or a study of another direction
            raise ConfigError(f"cannot open the study '{self.name}' in {self.dir / 'study.db'} "
                              f"({_first_line(exc).rstrip('.')}).") from None
        seed = self.sampler_cfg.get("seed") if self.sampler_cfg is not None else None
        # a resumed study reseeds its sampler past the trials so far: the same seed would redraw the first points
        extra = {} if seed is None else {"seed": int(seed) + len(study.trials)}
        study.sampler = _instantiate(self.sampler_cfg, "sampler", **extra) or study.sampler
        identity = json.loads(json.dumps({"overrides": self.fixed, "space": self.spec, "metric": self.metric,
                                          "direction": self.direction}))
        stored = study.user_attrs.get("identity")
        if stored is None:
            study.set_user_attr("identity", identity)
        elif stored != identity:
            what = next(k for k in identity if stored.get(k) != identity[k])
            named = {"overrides": "other command-line overrides", "space": "another search space",
                     "metric": "another monitor.metric", "direction": "another direction"}[what]
            raise ConfigError(f"the study in {self.dir} was started with {named} ({stored.get(what)}); run its "
                              "own command again, or pass hparams_search.study_dir=<new folder> for a new study.")
        self.study = study

    def _run_dir(self, trial) -> Path:
        return Path(trial.user_attrs.get("run_dir") or self.dir / f"trial_{trial.number}")

    def continue_interrupted(self) -> None:
        """Trials left running by a killed search (the lock says none is alive) continue in their directories."""
        state = self.optuna.trial.TrialState
        for old in self.study.get_trials(deepcopy=False, states=(state.RUNNING,)):
            run_dir = str(self._run_dir(old))
            self.study.tell(old.number, state=state.FAIL)
            self.study.enqueue_trial(old.params, user_attrs={"continues": old.number, "run_dir": run_dir})
            print(f"trial {old.number} was cut short; it continues in {run_dir}", flush=True)

    def ended(self) -> int:
        """Trials that ran to their end (complete, pruned or failed), a trial continued elsewhere not counted."""
        state = self.optuna.trial.TrialState
        trials = self.study.get_trials(deepcopy=False)
        continued = {t.user_attrs.get("continues") for t in trials}
        return sum(1 for t in trials if t.state in (state.COMPLETE, state.PRUNED)
                   or (t.state == state.FAIL and t.number not in continued))

    def run_trial(self, trial) -> tuple[str, float | None]:
        state = self.optuna.trial.TrialState
        run_dir = self._run_dir(trial)
        overrides = [*self.overrides, *param_overrides(trial.params)]
        resuming = (run_dir / "checkpoints" / "last.ckpt").is_file()
        cfg = _compose(self.config_name, overrides + (["resume=true"] if resuming else []), run_dir)
        _write_records(run_dir, cfg, overrides)
        if self.prune:
            with open_dict(cfg):
                if cfg.get("callbacks") is None:
                    cfg.callbacks = {}
                cfg.callbacks.search_pruning = {"_target_": f"{__name__}.TrialPruning", "trial": trial.number,
                                                "metric": self.metric}
        HydraConfig.instance().set_config(cfg)
        _LIVE_TRIALS[trial.number] = trial
        try:
            record = train(cfg, run_dir)
        except (ConfigError, InputError, NonFiniteLossError) as exc:  # this point of the space cannot train
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=state.FAIL)
            return f"failed: {exc}", None
        finally:
            _LIVE_TRIALS.pop(trial.number, None)
        value, extra = record.get(self.metric), {}
        if value is None and record.get("curve"):  # resumed after its last validation (killed while testing):
            value = extra[self.metric] = record["curve"][-1]["value"]  # the curve, restored from the checkpoint
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            trial.set_user_attr("error", f"{self.metric} was {value!r} at the end of the run")
            self.study.tell(trial, state=state.FAIL)
            outcome = "failed"
        elif "pruned_at_epoch" in trial.user_attrs:
            self.study.tell(trial, state=state.PRUNED)
            outcome = f"pruned at epoch {trial.user_attrs['pruned_at_epoch']}"
        else:
            self.study.tell(trial, float(value))
            outcome = "complete"
        _annotate(run_dir, {**extra, "search_trial": trial.number, "search_state": outcome.split()[0]})
        return outcome, value

    def write_best(self) -> dict[str, Any]:
        state = self.optuna.trial.TrialState
        trials = self.study.get_trials(deepcopy=False)
        if not any(t.state == state.COMPLETE for t in trials):
            last = next((t.user_attrs["error"] for t in reversed(trials) if "error" in t.user_attrs), "none completed")
            raise ConfigError(f"no trial of the study in {self.dir} completed; the last one said: {last}")
        best = self.study.best_trial
        run_dir = self._run_dir(best)
        cfg = _compose(self.config_name, [*self.overrides, *param_overrides(best.params)], run_dir)
        HydraConfig.instance().set_config(cfg)
        body = OmegaConf.to_container(_plain(cfg), resolve=False)
        body["meta"] = OmegaConf.to_container(cfg.meta, resolve=True)  # the choices it was composed from
        body["hydra"] = {"run": {"dir": "${paths.log_dir}/runs/${now:%Y-%m-%d_%H-%M-%S}_" + f"{self.name}-best"},
                         "job": {"chdir": False}}
        command = f"mas-train --config-dir {override_value(str(self.dir))} --config-name best"
        header = (f"# Best trial {best.number} of study '{self.name}' ({self.metric} = {best.value:.6g}).\n"
                  f"# Train it again: {command}\n")
        _write_atomic(self.dir / "best.yaml", header + OmegaConf.to_yaml(OmegaConf.create(body)))
        counts = {s.name.lower(): sum(1 for t in trials if t.state == s) for s in (state.COMPLETE, state.PRUNED,
                                                                                  state.FAIL)}
        info = {"study": self.name, "study_dir": str(self.dir), "metric": self.metric, "direction": self.direction,
                "trial": best.number, "value": best.value, "params": best.params,
                "overrides": param_overrides(best.params), "run_dir": str(run_dir), "trials": counts,
                "best_yaml": str(self.dir / "best.yaml"), "command": command}
        _write_atomic(self.dir / "best.json", json.dumps(info, indent=2) + "\n")
        return info


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_records(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """``.hydra/`` records as ``mas-train`` writes them; a continued trial keeps its first ones."""
    records = run_dir / ".hydra"
    if (records / "config.yaml").is_file():
        return
    records.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(_plain(cfg), records / "config.yaml")
    (records / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def _annotate(run_dir: Path, fields: dict[str, Any]) -> None:
    """Mark the trial's ``metrics.json``: readers of run directories can tell a pruned run from a complete one."""
    path = run_dir / "metrics.json"
    if path.is_file():
        write_metrics(run_dir, {**json.loads(path.read_text()), **fields})


def run_search(cfg: DictConfig, overrides: list[str], config_name: str = "train") -> dict[str, Any]:
    """Run (or continue) the study ``cfg.hparams_search`` describes; returns what ``best.json`` holds.

    Args:
        cfg: the composed config of the ``mas-train`` command (with ``hparams_search``); Hydra's config is set.
        overrides: that command's overrides (``HydraConfig.get().overrides.task``); every trial repeats them.
        config_name: the primary config they apply to.

    Raises:
        ConfigError: one sentence for a missing optuna, a bad search space or a study started otherwise.
    """
    optuna = import_optuna()
    saved = HydraConfig.instance().cfg
    try:
        with _config_source():
            study = _Study(optuna, cfg, overrides, config_name)
            study.dir.mkdir(parents=True, exist_ok=True)
            with _study_lock(study.dir):
                study.open()
                study.continue_interrupted()
                best_line = ""
                while (done := study.ended()) < study.n_trials:
                    trial = study.study.ask(study.space)
                    t0 = time.perf_counter()
                    outcome, value = study.run_trial(trial)
                    shown = " ".join(param_overrides(trial.params))
                    result = f"{study.metric}={_fmt(value)} " if value is not None else ""
                    try:
                        best = study.study.best_trial
                        best_line = f"; best so far: trial {best.number} ({_fmt(best.value)})"
                    except ValueError:  # nothing complete yet
                        pass
                    print(f"trial {trial.number} [{done + 1}/{study.n_trials}] {shown} -> {result}{outcome} "
                          f"({time.perf_counter() - t0:.0f} s){best_line}", flush=True)
                info = study.write_best()
    finally:
        HydraConfig.instance().cfg = saved
    params = " ".join(info["overrides"])
    print(f"best trial {info['trial']}: {info['metric']}={_fmt(info['value'])} with {params} "
          f"(of {sum(info['trials'].values())} trials; config: {info['best_yaml']})", flush=True)
    return info
