"""One experiment: build data, features and classifier from a config, fit, evaluate, and log it all to MLflow."""

from __future__ import annotations

import functools
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stance.analysis.analyze import DEFAULT_ALIAS, DEFAULT_MODELS
from stance.config import build, check_loadable, compose_config
from stance.data.schema import DataError, Report, reader_report, to_frame, validate
from stance.data.tasks import Task
from stance.evaluation.metrics import F_AVG_CLASSES, Evaluation, evaluate, f_avg, macro_f1
from stance.models.estimators import PriorAdjusted, build_model, tune_class_weights
from stance.models.walk import ModelParts, model_parts
from stance.tracking.redact import redact_overrides
from stance.tracking.sweep import parent_run_id

EVAL_SPLITS = ("validation", "test")
log = logging.getLogger(__name__)


@dataclass
class Result:
    """A fitted model, its evaluation, the frames it saw, timings, the data report, its MLflow run and experiment."""

    model: Any
    evaluation: Evaluation
    frames: dict[str, Any]
    seconds: dict[str, float]
    report: Report
    task: Task
    run_id: str | None = None
    experiment_id: str | None = None

    @functools.cached_property
    def parts(self) -> ModelParts:
        """The fitted model's parts, found in one walk, for everything that logs it."""
        return model_parts(self.model)


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


def run_experiment(cfg: DictConfig, overrides: list[str] | None = None, tags: dict[str, str] | None = None) -> Result:
    """`train(cfg)` inside an MLflow run that records config, data, metrics, tables, figures and the model."""
    # Here, not at the top: they import MLflow (seconds), which `python -m stance.train --help` need not wait for.
    import mlflow

    from stance.artifact.save import log_trained
    from stance.tracking.runs import flatten, git_commit, log_result, mlflow_run, register

    check_loadable(cfg)
    overrides = redact_overrides(overrides or [])  # shown in the run's name and tags
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    tags = {"overrides": " ".join(overrides) or "(defaults)", "git_commit": git_commit(), **(tags or {})}
    if parent_run_id(cfg):
        tags["mlflow.parentRunId"] = parent_run_id(cfg)
    if cfg.get("optuna_trial_number") is not None:  # lets the Optuna sweeper find its best trial's run
        tags["optuna.trial_number"] = str(cfg.optuna_trial_number)
    run_name = cfg.mlflow.run_name or (",".join(overrides) if overrides else "default")
    start = time.perf_counter()
    with mlflow_run(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, run_name, params, tags) as run:
        result = train(cfg)
        result.run_id, result.experiment_id = run.info.run_id, run.info.experiment_id
        log_result(result, cfg, peak_rss_mb=_peak_rss_mb())
        if cfg.mlflow.log_model:
            uri = log_trained(result.model, result.frames["train"], result.task, result.parts)
            if cfg.mlflow.get("register"):
                register(uri, cfg.mlflow.register, cfg.mlflow.get("alias") or "latest")
        mlflow.log_metric("time/total_seconds", time.perf_counter() - start)
    return result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_default(kind: str, tracking_uri: str, limit: int | None = None) -> str:
    """Run the named experiment of a default model of `stance.analyze` into `tracking_uri`, registering it; its run id.

    `stance.analyze` calls it for a default model its store lacks; `limit` rows per split make a quick one (tests).
    """
    name, experiment = DEFAULT_MODELS[kind]
    overrides = [
        f"experiment={experiment}", f"mlflow.tracking_uri={tracking_uri}", f"mlflow.register={name}",
        f"mlflow.alias={DEFAULT_ALIAS}", *([f"data.limit={limit}"] if limit else []),
    ]  # fmt: skip
    cfg = compose_config(*overrides)
    if "show_progress" in cfg.features:  # a single embedder; combined feature sets set it per block
        cfg.features.show_progress = False
    return run_experiment(cfg, overrides).run_id
