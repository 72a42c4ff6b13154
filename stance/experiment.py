"""One experiment: build data, features and classifier from a config, fit, evaluate, and log it all to MLflow."""

from __future__ import annotations

import functools
import logging
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stance.analysis.analyze import DEFAULT_ALIAS, DEFAULT_MODELS, LARGE_MODELS
from stance.config import ConfigError, build, check_loadable, compose_config
from stance.data.schema import DataError, Report, reader_report, split_table, to_frame, validate
from stance.data.tasks import Task
from stance.evaluation.metrics import F_AVG_CLASSES, Evaluation, evaluate, f_avg, macro_f1
from stance.features.encoders import progress_bars
from stance.models.estimators import PriorAdjusted, build_model, tune_class_weights
from stance.models.walk import ModelParts, model_parts
from stance.tracking.console import quiet_libraries, split_counts
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


@dataclass
class Prepared:
    """What is checked before a run opens: the unfitted model, the frames it will see, their report, the task."""

    model: Any
    frames: dict[str, Any]
    report: Report
    task: Task
    seconds: float


def prepare(cfg: DictConfig) -> Prepared:
    """Build and check everything a run needs before fitting: the classifier's contract first, then the data."""
    start = time.perf_counter()
    name = cfg.classifier.get("_target_", "the classifier")
    classifier = build(cfg.classifier)
    check_classifier(classifier, name)
    data, task = build(cfg.data), build(cfg.task)
    dropped = reader_report(data)
    frames, report = validate({split: to_frame(ds) for split, ds in data.items()}, **cfg.data_checks, report=dropped)
    for warning in report.warnings[len(dropped.warnings) :]:  # the reader logged its own when it dropped the rows
        log.warning("data: %s", warning)
    if "train" not in frames:
        raise DataError(f"Data config {cfg.data._target_} has no train split (splits: {list(frames)}).")
    frames = {split: task.prepare(frame, f"{cfg.data._target_} {split}") for split, frame in frames.items()}
    for note in report.notes:
        log.info("data: %s", note)
    log.info("%s; by label:\n%s", split_counts(frames), split_table(frames))
    if not task.multilabel:
        check_class_sizes(classifier, frames["train"]["label"], name)
    model = build_model(build(cfg.features), classifier, cfg.per_target, task.multilabel)
    return Prepared(model, frames, report, task, time.perf_counter() - start)


def train(cfg: DictConfig, prepared: Prepared | None = None) -> Result:
    """Fit the prepared model (`prepare(cfg)` unless given) on train, evaluate it on validation and test."""
    prepared = prepared or prepare(cfg)
    model, frames, task = prepared.model, prepared.frames, prepared.task
    start = time.perf_counter()
    log.info("Fitting on the train split (%d rows)", len(frames["train"]))  # heads its encoders' lines (verbose=true)
    model.fit(frames["train"], frames["train"]["label"])
    if task.multilabel and "validation" in frames:
        model.tune_thresholds(frames["validation"], frames["validation"]["label"])
    elif cfg.get("tune_class_weights") and "validation" in frames:
        model = _adjust_priors(model, frames)
    fitted = time.perf_counter()
    evaluation = evaluate(model, {s: frames[s] for s in EVAL_SPLITS if s in frames}, task, cfg.bootstrap, cfg.seed)
    seconds = {"load": prepared.seconds, "fit": fitted - start, "evaluate": time.perf_counter() - fitted}
    return Result(model, evaluation, frames, seconds, prepared.report, task)


def check_classifier(classifier: Any, name: str) -> None:
    """A ConfigError, before any data is read, for a classifier without the `predict_proba` every run needs."""
    if not hasattr(classifier, "predict_proba"):
        raise ConfigError(
            f"{name} has no predict_proba, which evaluation and the logged model need (class probabilities). "
            "Calibrate it: `classifier=svm` is LinearSVC so wrapped; for another, its config's `_target_: "
            f"sklearn.calibration.CalibratedClassifierCV` with `estimator: {{_target_: {name}}}` (and its parameters "
            "under `estimator`); docs/experiments.md, 'A classifier without predict_proba'."
        )


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
    """`train(cfg)` inside an MLflow run that records config, data, metrics, tables, figures and the model.

    The config and data are checked first (`prepare`): a bad input is an error before any run exists in the store.
    """
    check_loadable(cfg)
    prepared = prepare(cfg)
    # Here, not at the top: they import MLflow (seconds), which `python -m stance.train --help` need not wait for.
    import mlflow

    from stance.artifact.save import log_trained
    from stance.tracking.runs import flatten, git_commit, log_result, mlflow_run, register

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
        result = train(cfg, prepared)
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


def train_default(kind: str, tracking_uri: str, limit: int | None = None, large: bool = False) -> str:
    """Run the named experiment of a default model of `stance analyze` into `tracking_uri`, registering it; its run id.

    Says first what it trains and about how long it takes, then shows each encoding's progress bar (with its own
    estimate) on stderr. `large`: the opt-in larger model of the kind (`LARGE_MODELS`); `limit` rows per split make a
    quick one (tests). Ctrl-C or SIGTERM ends its MLflow run KILLED; the vectors encoded so far stay in the cache.
    """
    default = (LARGE_MODELS if large else DEFAULT_MODELS)[kind]
    quick = [f"data.limit={limit}"] if limit else []
    _say(
        f"Training the default {kind} model ({default.about}) once into {tracking_uri}: about {default.minutes} min "
        "on 2 free CPU cores from an empty cache, seconds to load afterwards. Ctrl-C stops it."
    )
    start = time.perf_counter()
    for stage in default.after:  # each registers, under its own config's name, what the next starts from
        _say(f"First experiment={stage}, which experiment={default.experiment} starts from.")
        _run_default(kind, [f"experiment={stage}", f"mlflow.tracking_uri={tracking_uri}", *quick])
    run_id = _run_default(kind, [
        f"experiment={default.experiment}", f"mlflow.tracking_uri={tracking_uri}", f"mlflow.register={default.name}",
        f"mlflow.alias={DEFAULT_ALIAS}", *quick,
    ])  # fmt: skip
    _say(f"Trained the default {kind} model in {_duration(time.perf_counter() - start)}: run {run_id}.")
    return run_id


def _run_default(kind: str, overrides: list[str]) -> str:
    """One named experiment of a default model, with progress bars; its run id (Ctrl-C: the run ends KILLED)."""
    cfg = compose_config(*overrides)
    quiet_libraries(cfg.get("verbose", False))  # the encoding bars, not MLflow's "Downloading artifacts" ones
    if "show_progress" in cfg.features:  # the logged model predicts quietly; training shows bars (progress_bars)
        cfg.features.show_progress = False
    try:
        with progress_bars():
            return run_experiment(cfg, overrides).run_id
    except KeyboardInterrupt:
        _say(f"Stopped: the {kind} model's MLflow run is marked KILLED; run again to finish (encoded texts are kept).")
        raise


def prepare_defaults(tracking_uri: str, large: bool = False, limit: int | None = None) -> None:
    """Train the default models of `stance analyze` that `tracking_uri` lacks (`large`: also replace a smaller one)."""
    from stance.analysis.analyze import registered_experiment

    for kind, default in (LARGE_MODELS if large else DEFAULT_MODELS).items():
        found = registered_experiment(kind, tracking_uri)
        if found is None or (large and found != default.experiment):
            train_default(kind, tracking_uri, limit, large)
            found = default.experiment
        _say(f"{kind}: models:/{default.name}@{DEFAULT_ALIAS} (experiment={found}) is ready.")
    _say(f"`stance analyze` loads the default models from {tracking_uri} in seconds.")


def _duration(seconds: float) -> str:
    """`1 min 52 s`, or `40 s` under a minute."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _say(line: str) -> None:
    """A line on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
