"""Train, evaluate and log one experiment: `python -m stance.train [overrides]`, `-m` to sweep."""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stance.data import DataError, Report, reader_report, to_frame, validate
from stance.features import ModelLoadError
from stance.metrics import F_AVG_CLASSES, Evaluation, evaluate, f_avg, macro_f1
from stance.model import PriorAdjusted, build_model, tune_class_weights
from stance.tasks import Task

EVAL_SPLITS = ("validation", "test")
# The configs ship inside the package, so a wheel (not only an editable install) can run experiments.
CONF = Path(__file__).resolve().parent / "conf"
log = logging.getLogger(__name__)
# Overrides the Optuna sweeper adds to each trial for bookkeeping; they are not part of the experiment.
SWEEPER_KEYS = ("mlflow_parent_run_id", "optuna_trial_number")


@dataclass
class Result:
    """A fitted model, its evaluation, the frames it saw, timings, the data report, and the MLflow run id."""

    model: Any
    evaluation: Evaluation
    frames: dict[str, Any]
    seconds: dict[str, float]
    report: Report
    task: Task
    run_id: str | None = None


def build(node: DictConfig) -> Any:
    """`instantiate(node)`, letting our own clear errors through instead of Hydra's wrapper around them."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, DataError | ModelLoadError):
            raise err.__cause__ from None
        raise


def compose_config(*overrides: str) -> DictConfig:
    """The experiment config `python -m stance.train OVERRIDES...` would run, composed in-process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra job (e.g. a reader that combines corpora)
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def load_data(name: str, *overrides: str) -> Any:
    """A corpus's DatasetDict from its data config (`stance/conf/data/<name>.yaml`), labels mapped as in training."""
    return build(compose_config(f"data={name}", *overrides).data)


def train(cfg: DictConfig) -> Result:
    """Build data, features and classifier from config, fit on train, evaluate on validation and test."""
    start = time.perf_counter()
    data, task = build(cfg.data), build(cfg.task)
    dropped = reader_report(data)
    frames, report = validate({split: to_frame(ds) for split, ds in data.items()}, **cfg.data_checks, report=dropped)
    for warning in report.warnings[len(dropped.warnings) :]:  # the reader logged its own when it dropped the rows
        log.warning("data: %s", warning)
    if "train" not in frames:
        raise DataError(f"Data config {cfg.data._target_} has no train split (splits: {list(frames)}).")
    frames = {split: task.prepare(frame, f"{cfg.data._target_} {split}") for split, frame in frames.items()}
    classifier = build(cfg.classifier)
    if not task.multilabel:
        check_class_sizes(classifier, frames["train"]["label"], cfg.classifier.get("_target_", "the classifier"))
    model = build_model(build(cfg.features), classifier, cfg.per_target, task.multilabel)
    loaded = time.perf_counter()
    model.fit(frames["train"], frames["train"]["label"])
    if task.multilabel and "validation" in frames:
        model.tune_thresholds(frames["validation"], frames["validation"]["label"])
    elif cfg.get("tune_class_weights") and "validation" in frames:
        model = _adjust_priors(model, frames)
    fitted = time.perf_counter()
    evaluation = evaluate(model, {s: frames[s] for s in EVAL_SPLITS if s in frames}, task, cfg.bootstrap, cfg.seed)
    seconds = {"load": loaded - start, "fit": fitted - loaded, "evaluate": time.perf_counter() - fitted}
    return Result(model, evaluation, frames, seconds, report, task)


def check_class_sizes(classifier: Any, labels: Any, name: str) -> None:
    """A DataError when a label has fewer training rows than the folds the classifier cross-validates on."""
    params = classifier.get_params(deep=True)
    folds = max((v for k, v in params.items() if k.rsplit("__", 1)[-1] == "cv" and isinstance(v, int)), default=0)
    counts = labels.astype(str).value_counts()
    if len(counts) and counts.min() < folds:
        raise DataError(
            f"Label {counts.idxmin()!r} has {counts.min()} training row(s), fewer than the {folds} cross-validation "
            f"folds of {name}. Add rows with it, merge it into another label (data.label_map), or use a classifier "
            "without folds (e.g. classifier=logreg)."
        )


def _adjust_priors(model: Any, frames: dict[str, Any]) -> PriorAdjusted:
    """Wrap the fitted model with class weights that maximise the validation objective (never test)."""
    from sklearn.frozen import FrozenEstimator

    validation = frames["validation"]
    uses_f_avg = set(F_AVG_CLASSES) <= set(map(str, model.classes_))
    weights = tune_class_weights(model, validation, validation["label"], f_avg if uses_f_avg else macro_f1)
    log.info("class weights tuned on validation: %s", weights)
    return PriorAdjusted(FrozenEstimator(model), weights).fit(frames["train"], frames["train"]["label"])


class ConfigError(ValueError):
    """The configuration asks for something stance cannot do well; the message says why and what to do instead."""


def _targets(node: Any) -> list[str]:
    """Every `_target_` in a config (nested dicts and lists, as `OmegaConf.to_container` gives them)."""
    if isinstance(node, dict):
        own = [str(node["_target_"])] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    return [t for v in node for t in _targets(v)] if isinstance(node, list) else []


def check_loadable(cfg: DictConfig) -> None:
    """Refuse, before any work, a pipeline whose logged model `stance.load_model` would not load."""
    from stance.tracking import TRUSTED_MODULES

    def trusted(target: str) -> bool:
        return any(target == m or target.startswith(f"{m}.") for m in TRUSTED_MODULES)

    if not cfg.mlflow.get("log_model"):
        return
    parts = [OmegaConf.to_container(cfg[part], resolve=False) for part in ("features", "classifier")]
    foreign = [t for part in parts for t in _targets(part) if not trusted(t)]
    if foreign:
        package = foreign[0].split(".", 1)[0]
        raise ConfigError(
            f"{foreign[0]} is not from scikit-learn or stance: a logged model holding {package} objects could not be "
            f"loaded by stance.load_model (it loads only {', '.join(TRUSTED_MODULES)} classes, since others could run "
            f"code), and {package} is not in the model's requirements. Use a scikit-learn estimator (classifier=hgb "
            "for gradient-boosted trees), or set mlflow.log_model=false to train and evaluate it without a model."
        )


def run_experiment(cfg: DictConfig, overrides: list[str] | None = None, tags: dict[str, str] | None = None) -> Result:
    """`train(cfg)` inside an MLflow run that records config, data, metrics, tables, figures and the model."""
    from stance import tracking
    from stance.sweep import parent_run_id

    check_loadable(cfg)
    overrides = tracking.redact_overrides(overrides or [])  # shown in the run's name and tags
    params = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
    tags = {"overrides": " ".join(overrides) or "(defaults)", "git_commit": tracking.git_commit(), **(tags or {})}
    if parent_run_id(cfg):
        tags["mlflow.parentRunId"] = parent_run_id(cfg)
    if cfg.get("optuna_trial_number") is not None:  # lets the Optuna sweeper find its best trial's run
        tags["optuna.trial_number"] = str(cfg.optuna_trial_number)
    run_name = cfg.mlflow.run_name or (",".join(overrides) if overrides else "default")
    start = time.perf_counter()
    with tracking.mlflow_run(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, run_name, params, tags) as run:
        result = train(cfg)
        result.run_id = run.info.run_id
        tracking.log_result(result, cfg, peak_rss_mb=_peak_rss_mb())
        tracking.mlflow.log_metric("time/total_seconds", time.perf_counter() - start)
    return result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the objective so a sweeper can optimise it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from stance import tracking
    from stance.sweep import SWEEP_TAG

    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.lstrip("+").startswith(SWEEPER_KEYS)]
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        result = run_experiment(cfg, overrides, {SWEEP_TAG: hydra_cfg.sweep.dir} if sweeping else {})
    except Exception as err:
        if sweeping:  # the job's MLflow run is already FAILED; the sweep goes on (NaN tells a sweeper it failed)
            log.exception("job failed: %s", " ".join(overrides))
            return float("nan")
        if isinstance(err, DataError | ModelLoadError | ConfigError):
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    metrics = result.evaluation.metrics
    headline = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.count("/") == 1 and "_ci_" not in k)
    shown = tracking.redact_text(cfg.mlflow.tracking_uri)
    print(f"{headline}\nMLflow run id: {result.run_id}  (tracking URI: {shown})", file=sys.stdout)
    if cfg.objective not in metrics:
        log.warning("objective %s was not computed for this data; returning validation/macro_f1", cfg.objective)
    return metrics.get(cfg.objective, metrics.get("validation/macro_f1", float("nan")))


if __name__ == "__main__":
    main()
