"""The Hydra entry point: `python -m stance.train [overrides]` runs one experiment, `-m` sweeps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import stance.conf
from stance.config import ConfigError
from stance.data.schema import DataError
from stance.experiment import Result, run_experiment
from stance.features.pretrained import ModelLoadError
from stance.features.resumable import DiskFullError, export_slurm_ranks, rank
from stance.tracking.console import quiet_libraries
from stance.tracking.redact import redact_text
from stance.tracking.server import TrackingError, absolute_uri
from stance.tracking.sweep import SWEEP_TAG

log = logging.getLogger(__name__)
# Overrides the Optuna sweeper adds to each trial for bookkeeping; they are not part of the experiment.
SWEEPER_KEYS = ("mlflow_parent_run_id", "optuna_trial_number")
# Errors whose message names the input and its fix: one `error:` line, exit status 1.
USER_ERRORS = (DataError, ModelLoadError, ConfigError, TrackingError, DiskFullError)
# Where plain `mlflow ui` serves.
UI = "http://127.0.0.1:5000"


@hydra.main(config_path="pkg://stance.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the objective so a sweeper can optimise it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    export_slurm_ranks()
    quiet_libraries(cfg.get("verbose", False))
    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.lstrip("+").startswith(SWEEPER_KEYS)]
    if rank() > 0:
        cfg = follower_config(cfg)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        result = run_experiment(cfg, overrides, {SWEEP_TAG: hydra_cfg.sweep.dir} if sweeping else {})
    except Exception as err:
        said = isinstance(err, USER_ERRORS)  # a user's input: its message says all, no traceback
        if sweeping:  # the sweep goes on (NaN tells a sweeper the job failed); a crash left the job's run FAILED
            log.error("job failed: %s: %s", " ".join(overrides), err, exc_info=not said)
            return float("nan")
        if said:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    metrics = result.evaluation.metrics
    if rank() > 0:  # rank 0 reports the run
        return metrics.get(cfg.objective, float("nan"))
    print(report(result, cfg), file=sys.stdout)
    if cfg.objective not in metrics:
        log.warning("objective %s was not computed for this data; returning validation/macro_f1", cfg.objective)
    return metrics.get(cfg.objective, metrics.get("validation/macro_f1", float("nan")))


def report(result: Result, cfg: DictConfig) -> str:
    """The end of a run: its metrics, run id and store, its model with a line loading it from any folder, the UI."""
    metrics = result.evaluation.metrics
    headline = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.count("/") == 1 and "_ci_" not in k)
    store = redact_text(absolute_uri(cfg.mlflow.tracking_uri))  # relative, it would name another store elsewhere
    lines = [headline, f"MLflow run id: {result.run_id}  (tracking URI: {store})"]
    if cfg.mlflow.log_model:
        model = f"runs:/{result.run_id}/model"
        name = cfg.mlflow.get("register")
        registered = f"  (registered: models:/{name}@{cfg.mlflow.get('alias') or 'latest'})" if name else ""
        lines += [
            f"Model: {model}{registered}",
            f'Load it from any folder: import stance; model = stance.load_model("{model}", tracking_uri="{store}")',
        ]
    # MLflow 3's UI opens an experiment on its GenAI pages (traces, agent versions) unless the link asks for the
    # model-training view, where the runs table comes first and each run's model is a link in it.
    page = f"#/experiments/{result.experiment_id}/runs?workflowType=machine_learning"
    if store.startswith(("http://", "https://")):
        lines.append(f"Its runs in the MLflow UI: {store.rstrip('/')}/{page}")
    else:
        lines.append(f"Its runs in the MLflow UI: mlflow ui --backend-store-uri {store}, then {UI}/{page}")
    return "\n".join(lines)


def follower_config(cfg: DictConfig) -> DictConfig:
    """A non-zero rank's config under `torchrun`: it trains alongside rank 0 and logs into a throwaway store.

    Every rank runs the whole experiment (the data-parallel fine-tune needs all of them in its training loop); only
    rank 0's MLflow run, model and cache entries are kept.
    """
    import atexit
    import shutil
    import tempfile

    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    store = Path(tempfile.mkdtemp(prefix=f"stance-rank{rank()}-"))
    atexit.register(shutil.rmtree, store, True)
    cfg.mlflow.tracking_uri = f"sqlite:///{store}/mlflow.db"
    cfg.mlflow.log_model, cfg.mlflow.register, cfg.bootstrap = False, None, 0
    return cfg


def with_own_configs(argv: list[str], cwd: Path) -> list[str]:
    """`argv` plus `--config-dir conf` when the working folder has a `conf/` of its own (not the package's configs).

    A researcher's `conf/classifier/rf.yaml` beside their data is then found as `classifier=rf`; the package's configs
    still come first, and an explicit `--config-dir` or `hydra.searchpath` is left alone.
    """
    own = cwd / "conf"
    packaged = Path(stance.conf.__file__).resolve().parent
    explicit = any(a in ("-cd", "--config-dir") or a.startswith(("--config-dir=", "hydra.searchpath")) for a in argv)
    if explicit or not own.is_dir() or own.resolve() == packaged:
        return argv
    print(f"also reading configs from {own} (your own conf/)", file=sys.stderr)
    return ["--config-dir", str(own), *argv]


if __name__ == "__main__":
    sys.argv[1:] = with_own_configs(sys.argv[1:], Path.cwd())
    main()
