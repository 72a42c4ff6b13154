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
from stance.experiment import run_experiment
from stance.features.pretrained import ModelLoadError
from stance.features.resumable import DiskFullError, export_slurm_ranks, rank
from stance.tracking.console import quiet_libraries
from stance.tracking.redact import redact_text
from stance.tracking.server import TrackingError
from stance.tracking.sweep import SWEEP_TAG

log = logging.getLogger(__name__)
# Overrides the Optuna sweeper adds to each trial for bookkeeping; they are not part of the experiment.
SWEEPER_KEYS = ("mlflow_parent_run_id", "optuna_trial_number")
# Errors whose message names the input and its fix: one `error:` line, exit status 1.
USER_ERRORS = (DataError, ModelLoadError, ConfigError, TrackingError, DiskFullError)


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
    headline = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.count("/") == 1 and "_ci_" not in k)
    shown = redact_text(cfg.mlflow.tracking_uri)
    print(f"{headline}\nMLflow run id: {result.run_id}  (tracking URI: {shown})", file=sys.stdout)
    if cfg.objective not in metrics:
        log.warning("objective %s was not computed for this data; returning validation/macro_f1", cfg.objective)
    return metrics.get(cfg.objective, metrics.get("validation/macro_f1", float("nan")))


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
