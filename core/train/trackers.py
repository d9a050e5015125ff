"""Offline experiment trackers behind ``logger=mlflow`` and ``logger=wandb`` (the 'trackers' extra).

Both are factories that ``conf/logger/*.yaml`` name as ``_target_``: a missing package becomes one sentence
naming the extra, and each fixes a snag of its tracker when several runs share one process (``mas-train
hparams_search=...`` trials, ``mas-compare``'s pool workers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.train.errors import ConfigError

__all__ = ["mlflow_logger", "wandb_logger"]


def _missing(package: str, logger: str) -> ConfigError:
    return ConfigError(f"logger={logger} needs the {package} package; install the 'trackers' extra: "
                       "pip install -e '.[trackers]'.")


def mlflow_logger(*, store_dir: str, experiment_name: str, **kwargs: Any):
    """Lightning's ``MLFlowLogger`` on a local SQLite store ``<store_dir>/mlflow.db`` (artifacts beside it).

    MLflow 3 refuses a plain ``./mlruns`` folder store unless ``MLFLOW_ALLOW_FILE_STORE=true``, so the
    offline store is a database file; browse it with ``mlflow ui --backend-store-uri sqlite:///<store_dir>/mlflow.db``.
    """
    try:
        import mlflow  # noqa: F401 - the package itself: its submodules may be cached in sys.modules without it
    except ImportError:
        raise _missing("mlflow", "mlflow") from None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from lightning.pytorch.loggers import MLFlowLogger

    store = Path(store_dir).expanduser().resolve()
    store.mkdir(parents=True, exist_ok=True)  # SQLite cannot create the folder of its file
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri)
    if client.get_experiment_by_name(experiment_name) is None:
        try:  # created here with an absolute artifact folder (MLflow's default is ./mlruns of the working dir)
            client.create_experiment(experiment_name, artifact_location=(store / "artifacts").as_uri())
        except MlflowException:  # another run of a pool created it in the meantime
            pass
    return MLFlowLogger(experiment_name=experiment_name, tracking_uri=uri, **kwargs)


def wandb_logger(**kwargs: Any):
    """Lightning's ``WandbLogger``; a wandb run still open in this process (an earlier training's) is
    finished first, else Lightning would log this run into it."""
    try:
        import wandb
    except ImportError:
        raise _missing("wandb", "wandb") from None
    from lightning.pytorch.loggers import WandbLogger

    if wandb.run is not None:
        wandb.finish()
    logger = WandbLogger(**kwargs)
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)  # Lightning passes anonymous=None, which wandb 0.31 warns is obsolete
    return logger
