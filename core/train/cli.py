"""Console scripts: ``mas-train``, ``mas-eval``, ``mas-predict`` (Hydra apps on ``conf/``).

Bad input ends the program with one sentence on stderr and exit status 2; nothing already
written in the run directory is removed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from core.train.errors import ConfigError, InputError
from core.train.overrides import check_command_line, split_free_text
from core.train.tasks import NonFiniteLossError

CONF = "pkg://conf"  # the config tree ships inside the wheel as the package ``conf``
_FREE_TEXT: list[str] = []  # mas-predict text=... values, kept away from Hydra's override grammar

OmegaConf.register_new_resolver("mas.slug", lambda s: str(s).replace("/", "-"), replace=True)
# a stack's middle layer, depth // 2 (layer 3 of 6, 1 of 3, 0: none for one layer): a tapped layer follows model.depth
OmegaConf.register_new_resolver("mas.middle_layer", lambda depth: int(depth) // 2, replace=True)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; known user errors become ``error: <sentence>`` and exit status 2."""
    try:
        return fn()
    except (ConfigError, InputError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except MisconfigurationException as exc:  # Lightning's word on a trainer/callback combination
        print(f"error: Lightning refused the configuration: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _out_dir() -> str:
    return HydraConfig.get().runtime.output_dir


def _check_launch(cfg: DictConfig) -> None:
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))
    hc = HydraConfig.get()
    on_slurm = "submitit" in str(OmegaConf.select(hc, "launcher._target_", default=""))
    if hc.mode == RunMode.MULTIRUN and not on_slurm and strategy.startswith("ddp") and "spawn" not in strategy:
        raise ConfigError(
            "trainer.strategy=ddp cannot run inside a Hydra multirun (-m): Lightning re-launches the other ranks "
            "with the original sweep arguments; use trainer=ddp_spawn for sweeps, or run each job without -m.")


@hydra.main(version_base="1.3", config_path=CONF, config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from core.train.run import train

    def go():
        _check_launch(cfg)
        if cfg.get("hparams_search") is not None:  # an Optuna study: trials are composed and trained here
            from core.train.search import run_search

            hc = HydraConfig.get()
            return run_search(cfg, list(hc.overrides.task), hc.job.config_name)["value"]
        record = train(cfg, _out_dir())
        metric = OmegaConf.select(cfg, "monitor.metric")
        return record.get(metric) if metric else None

    return guarded(go)


@hydra.main(version_base="1.3", config_path=CONF, config_name="eval")
def _eval(cfg: DictConfig) -> None:
    from core.train.run import evaluate, set_threads

    def go():
        if not cfg.get("ckpt_path"):
            raise ConfigError("mas-eval needs ckpt_path=<path to a .ckpt written by mas-train>.")
        set_threads(cfg)
        overrides = {}
        for item in cfg.get("override") or []:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ConfigError(f"override entries are key=value assignments, not '{item}'.")
            overrides[key.strip()] = yaml.safe_load(value)
        if cfg.get("size_ratio") is not None:  # shorthand for the test split at another input size
            overrides["data.size_ratio"] = float(cfg.size_ratio)
        record = evaluate(cfg.ckpt_path, _out_dir(), overrides=overrides, trainer_cfg=cfg.trainer)
        for k, v in record.items():
            if k.startswith("test/"):
                print(f"{k} = {v:.4f}")

    guarded(go)


@hydra.main(version_base="1.3", config_path=CONF, config_name="predict")
def _predict(cfg: DictConfig) -> None:
    from core.train.run import load_for_predict, set_threads

    def go():
        if not cfg.get("ckpt_path"):
            raise ConfigError("mas-predict needs ckpt_path=<path to a .ckpt written by mas-train>.")
        set_threads(cfg)
        run_cfg, dm, module = load_for_predict(cfg.ckpt_path)
        if run_cfg.get("predictor") is None:
            raise ConfigError(f"task '{run_cfg.get('task')}' has no predictor configured.")
        predictor = hydra.utils.instantiate(run_cfg.predictor)
        request = OmegaConf.to_container(cfg, resolve=True)
        if _FREE_TEXT:
            request["text"] = _FREE_TEXT[0] if len(_FREE_TEXT) == 1 else list(_FREE_TEXT)
        predictor(module=module, datamodule=dm, request=request, out_dir=_out_dir())

    guarded(go)


def _checked(config_name: str, app: str) -> None:
    """Validate ``sys.argv`` before Hydra sees it (one sentence and exit 2 on a bad override)."""
    guarded(lambda: check_command_line(config_name, sys.argv[1:], app))


def _keep_run_records() -> None:
    """Resuming into an existing run writes its Hydra records beside the original ones, never over them."""
    args = sys.argv[1:]
    resuming = any(a.split("=", 1)[1].lower() in ("true", "1", "yes") for a in args if a.startswith("resume="))
    run_dir = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
    if not (resuming and run_dir) or any(a.startswith("hydra.output_subdir=") for a in args):
        return
    if (Path(run_dir).expanduser() / ".hydra" / "config.yaml").is_file():
        sys.argv.append(f"hydra.output_subdir=.hydra/resume-{time.strftime('%Y%m%d-%H%M%S')}")


def train_main() -> None:
    _checked("train", "mas-train")
    _keep_run_records()
    _train()


def eval_main() -> None:
    _checked("eval", "mas-eval")
    _eval()


def predict_main() -> None:
    rest, texts = split_free_text(sys.argv[1:], "text")
    sys.argv[1:] = rest
    _FREE_TEXT[:] = texts
    _checked("predict", "mas-predict")
    _predict()
