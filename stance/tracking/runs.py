"""MLflow runs: one per experiment, with params, tags, metrics, the dataset, tables and figures.

The run's model is logged by `stance.artifact.save`.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import LoggedModelStatus

from stance.evaluation import figures
from stance.tracking.redact import quiet_credentials, redact, redact_config, redact_text
from stance.tracking.server import (
    FULL_ERRNOS,
    TrackingError,
    check_tracking_uri,
    error_chain,
    first_line,
    full_disk,
    full_store_error,
    retry_busy,
    set_experiment,
)
from stance.tracking.signals import sigterm_as_interrupt

log = logging.getLogger(__name__)


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """Nested config as `a.b.c: value` params (an empty mapping has none)."""
    return pd.json_normalize(config, sep=".").to_dict(orient="records")[0]


def git_commit() -> str:
    """The current commit of the working tree, `unknown` outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextmanager
def mlflow_run(
    tracking_uri: str, experiment: str, run_name: str | None, params: dict[str, Any], tags: dict[str, str]
) -> Iterator[Any]:
    """An active MLflow run, once the store answers; an error ends it FAILED, Ctrl-C or SIGTERM KILLED.

    A full disk under the store or its artifacts is a `StoreFullError` saying whether the run's end was recorded; a
    status the store cannot record is said in one line, never raised over the error that ended the run.
    """
    check_tracking_uri(tracking_uri)
    quiet_credentials(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    with _full_disk_said_once():
        run = _start_run(tracking_uri, experiment, run_name, tags)
        try:
            with sigterm_as_interrupt():
                mlflow.log_params({k: v[:6000] for k, v in redact(params).items()})
                yield run
        except BaseException as err:
            _end_failed(run, err, tracking_uri)
            raise
        unrecorded = _end_run(run, "FINISHED")
        if unrecorded is not None:
            raise _unrecorded_error(run, "FINISHED", unrecorded, tracking_uri) from None


@contextmanager
def _full_disk_said_once() -> Iterator[None]:
    """Within: MLflow logs no traceback of a full disk (80 lines each time), which the `StoreFullError` says in one."""
    logger = logging.getLogger("mlflow.store.db.utils")  # logs, then raises, every SQLAlchemy OperationalError
    quiet = _NotFullDisk()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _NotFullDisk(logging.Filter):
    """Passes the log records whose error is not a full disk."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[1] and full_disk(record.exc_info[1]))


def _start_run(tracking_uri: str, experiment: str, run_name: str | None, tags: dict[str, str]) -> Any:
    """`mlflow.start_run` in `experiment`; a `StoreFullError` if the store's disk is too full to create the run."""
    try:
        set_experiment(experiment)
        return mlflow.start_run(run_name=run_name and redact_text(run_name), tags=redact(tags))
    except Exception as err:
        if full_disk(err):
            raise full_store_error(err, tracking_uri, "to start a run in", then="No run was created. ") from None
        raise


def _end_failed(run: Any, err: BaseException, tracking_uri: str) -> None:
    """End `run` KILLED (Ctrl-C, SIGTERM) or FAILED after `err`; a `StoreFullError` instead if a disk filled up."""
    status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
    full = isinstance(err, Exception) and bool(full_disk(err)) and _from_mlflow(err, run)
    removed: list[str] = []
    if full:  # first free what MLflow left behind, so that the store may have room to record the end
        removed = _drop_half_written(err, _artifact_root(run))
        _fail_pending_models(run)
    unrecorded = _end_run(run, status)
    if full:
        then = "".join(f"The cut-short copy {path} was removed. " for path in removed)
        if unrecorded is None:
            then += f"The run is marked {status}. "
        else:
            why = full_disk(unrecorded) or first_line(unrecorded)  # SQLAlchemy's own first line says nothing here
            then += f"Its status could not be recorded either ({why}): it shows RUNNING. "
        doing = f"for MLflow run {run.info.run_id} in"
        raise full_store_error(err, tracking_uri, doing, _artifact_root(run), then=then) from None
    if unrecorded is not None:  # the error that ended the run is the one raised; this one is only said
        log.warning("MLflow run %s could not be marked %s: %s", run.info.run_id, status, first_line(unrecorded))


def _fail_pending_models(run: Any) -> None:
    """Mark FAILED the run's logged models left PENDING (MLflow could not: the store was full when a copy failed)."""
    client = mlflow.tracking.MlflowClient()
    try:
        found = f"source_run_id = '{run.info.run_id}'"
        for model in client.search_logged_models(experiment_ids=[run.info.experiment_id], filter_string=found):
            if model.status == LoggedModelStatus.PENDING:
                client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    except Exception:  # the store may still be full: the message reports the run's own status, which matters more
        pass


def _end_run(run: Any, status: str) -> Exception | None:
    """End the active run with `status`; the store's error if it could not record it (no run stays active)."""
    try:
        mlflow.end_run(status)  # takes the run off the active stack before it writes, so this cannot leave it active
    except Exception:
        try:  # a store busy under parallel jobs answers after a pause; a full one does not
            retry_busy(lambda: mlflow.tracking.MlflowClient().set_terminated(run.info.run_id, status))
        except Exception as err:
            return err
    return None


def _unrecorded_error(run: Any, status: str, err: Exception, tracking_uri: str) -> TrackingError:
    """The error for a run that ended well but whose status the store could not record."""
    if full_disk(err):
        then = f"Everything else was logged, but the run could not be marked {status}: it shows RUNNING. "
        return full_store_error(err, tracking_uri, f"to end MLflow run {run.info.run_id} in", then=then)
    return TrackingError(
        f"MLflow run {run.info.run_id} was logged but could not be marked {status} in {redact_text(tracking_uri)} "
        f"({first_line(err)}); it shows RUNNING."
    )


def _artifact_root(run: Any) -> str:
    """The experiment's artifact folder: the run's artifacts and its logged models (`<root>/models/`) live under it."""
    return run.info.artifact_uri.removesuffix(f"/{run.info.run_id}/artifacts")


def _from_mlflow(err: BaseException, run: Any) -> bool:
    """Whether MLflow raised `err` or it names a file under the run's artifacts (not another disk: the cache's...)."""
    from mlflow.exceptions import MlflowException

    return any(
        isinstance(link, MlflowException) or type(link).__module__.startswith("sqlalchemy")
        or _under(getattr(link, "filename2", None), _artifact_root(run))
        for link in error_chain(err)
    )  # fmt: skip


def _drop_half_written(err: BaseException, root: str) -> list[str]:
    """Delete the copies a full disk cut short under the artifact root, and say which.

    Such a copy is useless, and its space lets the store record the run's end (a local SQLite store and its
    artifacts share a disk).
    """
    removed = []
    for link in error_chain(err):
        target = getattr(link, "filename2", None)  # a copy's destination; its source is never touched
        if isinstance(link, OSError) and link.errno in FULL_ERRNOS and _under(target, root) and Path(target).is_file():
            Path(target).unlink()
            removed.append(target)
    return removed


def _under(path: str | None, root: str) -> bool:
    """Whether `path` lies in the local artifact folder `root` (never for remote artifact stores)."""
    from mlflow.utils.file_utils import local_file_uri_to_path
    from mlflow.utils.uri import is_local_uri

    if not path or not is_local_uri(root):
        return False
    return Path(path).resolve().is_relative_to(Path(local_file_uri_to_path(root)).resolve())


def log_dataset(frames: dict[str, pd.DataFrame], name: str, source: str) -> str:
    """Record each split as an MLflow dataset input; returns the digest of all splits."""
    import hashlib

    digests = []
    for split, data in frames.items():
        with warnings.catch_warnings():  # MLflow registers the local source twice and warns that it is ambiguous
            warnings.filterwarnings("ignore", message="The specified dataset source")
            dataset = mlflow.data.from_pandas(data, source=source, name=f"{name}/{split}")
        mlflow.log_input(dataset, context=split)
        digests.append(dataset.digest)
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:12]


def log_result(result: Any, cfg: Any, peak_rss_mb: float) -> None:
    """Log metrics, timings, the dataset, the resolved config, tables, figures and a description.

    The result's `parts` (`models.walk.model_parts` of its model) give the fine-tuned parts; the model itself is logged
    by `stance.artifact.save.log_trained`.
    """
    from omegaconf import OmegaConf

    mlflow.log_metrics(result.evaluation.metrics)
    mlflow.log_metrics({f"time/{k}_seconds": v for k, v in result.seconds.items()} | {"peak_rss_mb": peak_rss_mb})
    tuned = result.parts.fine_tuned
    if tuned:  # a per-target model fine-tunes once per target: total time, and how many came from the cache
        mlflow.log_metrics(
            {
                "time/finetune_seconds": sum(p.fit_seconds_ for p in tuned),
                "finetune/models": len(tuned),
                "finetune/cached": sum(bool(p.fit_cached_) for p in tuned),
                # steps a resumed fine-tune did not redo (the tag finetune.resumed.<key> says from which step)
                "finetune/resumed_steps": sum(getattr(p, "resumed_from_step_", 0) for p in tuned),
            }
        )
    _log_prompts(result.parts.estimators)
    data_name = str(cfg.data.get("_target_", "data")).rsplit(".", 1)[-1]
    digest = log_dataset(result.frames, data_name, source=str(cfg.data.get("root") or "$STANCE_DATA"))
    mlflow.set_tag("data_digest", digest)
    mlflow.log_metrics({f"data/rows/{split}": len(frame) for split, frame in result.frames.items()})
    mlflow.log_metrics({f"data/dropped/{reason}": n for reason, n in result.report.dropped.items()})
    report = result.report
    mlflow.log_dict(
        {"splits": report.notes, "warnings": report.warnings, "dropped": report.dropped}, "data_report.json"
    )
    resolved = redact_config(OmegaConf.to_container(cfg, resolve=True))  # resolved env values may hold secrets
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")
    _log_tables(result.evaluation)
    for name, figure in _figures(result.evaluation, result.task, data_name).items():
        mlflow.log_figure(figure, name)
        figure.clf()
    mlflow.set_tag("mlflow.note.content", describe_run(result, cfg, data_name))


def _log_prompts(parts: Any) -> None:
    """A prompted LM's prompt, label words, shots and model identity (`prompt_record_`): an artifact and params.

    Metrics: statements/s of the last rows it labelled (the test split); a served LM's (classifier=llm_endpoint)
    `usage_`: requests sent and answered from the cache, tokens in and out, and the estimated cost, since fit.
    """
    prompted = [part for part in parts if getattr(part, "prompt_record_", None)]
    for i, part in enumerate(prompted):
        suffix = f"_{i}" if len(prompted) > 1 else ""
        record = redact_config(part.prompt_record_)  # an endpoint URL may carry a password
        mlflow.log_dict(record, f"llm_prompt{suffix}.json")
        shot_rows = ",".join(str(shot["row"]) for shot in record["shots"])
        params = {"model_identity": record["model_identity"], "shot_rows": shot_rows[:6000]}
        params |= {key: record[key] for key in ("endpoint", "api") if key in record}
        mlflow.log_params(redact({f"llm{suffix}.{k}": v for k, v in params.items()}))
        last = ("truncated_rows", "statements_per_second")  # of the last rows it labelled: the test split
        metrics = {k: getattr(part, f"{k}_") for k in last if hasattr(part, f"{k}_")}
        metrics |= getattr(part, "usage_", {}) | {
            f"scored_by_{k}": v for k, v in getattr(part, "scored_by_", {}).items()
        }
        mlflow.log_metrics({f"llm{suffix}/{k}": v for k, v in metrics.items()})


def _log_tables(evaluation: Any) -> None:
    """Per-target and per-class tables, test predictions, and the most confident test errors."""
    for name, table in (("per_target", evaluation.per_target), ("per_class", evaluation.per_class)):
        if len(table):
            mlflow.log_table(table, f"{name}.json")
            mlflow.log_text(table.to_csv(index=False), f"{name}.csv")
    test = evaluation.predictions.get("test")
    if test is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions_test.parquet"
        test.assign(label=test["label"].astype(str), predicted=test["predicted"].astype(str)).to_parquet(path)
        mlflow.log_artifact(str(path))
    if "confidence" in test:
        errors = test[test["label"].astype(str) != test["predicted"].astype(str)]
        shown = errors.sort_values("confidence", ascending=False).head(200)
        mlflow.log_table(shown[[c for c in ERROR_COLUMNS if c in shown]], "misclassified_test.json")


ERROR_COLUMNS = ["confidence", "label", "predicted", "target", "text", "id", "group"]


def _figures(evaluation: Any, task: Any, data_name: str) -> dict[str, Any]:
    """The run's figures by artifact name, as the task calls for."""
    out = {}
    for split, predictions in evaluation.predictions.items():
        if not task.multilabel:
            out[f"confusion_matrix_{split}.png"] = figures.confusion_figure(predictions, f"{data_name} {split}")
    test = evaluation.predictions.get("test")
    per_class = evaluation.per_class
    if len(per_class) and "test" in set(per_class["split"]):
        f1 = per_class[per_class["split"] == "test"].set_index("class")["f1"].sort_values()
        out["f1_per_class_test.png"] = figures.bar_figure(f1, "F1", f"{data_name} test: F1 per class")
    per_target = evaluation.per_target
    if "f_avg" in per_target and 1 < per_target["target"].nunique() <= 30:
        values = per_target[per_target["split"] == "test"].set_index("target")["f_avg"].sort_values()
        out["f_avg_per_target_test.png"] = figures.bar_figure(values, "F_avg", f"{data_name} test: F_avg per target")
    if test is not None and "score" in test:
        out["pr_curve_test.png"] = figures.pr_figure(test, f"{data_name} test: check-worthy claims")
    elif test is not None and "confidence" in test:
        out["calibration_test.png"] = figures.calibration_figure(test, f"{data_name} test: calibration")
    return out


def describe_run(result: Any, cfg: Any, data_name: str) -> str:
    """A short note for the MLflow run page: what was trained on what, and how it scored."""
    features = str(cfg.features.get("_target_", "")).rsplit(".", 1)[-1]
    classifier = str(cfg.classifier.get("_target_", "")).rsplit(".", 1)[-1]
    mode = "one model per target" if cfg.per_target and result.task.name == "stance" else "one joint model"
    headline = ", ".join(
        f"{k} {v:.3f}" for k, v in result.evaluation.metrics.items() if k.startswith("test/") and k.count("/") == 1
        and "_ci_" not in k
    )  # fmt: skip
    return (
        f"**{result.task.name}** on `{data_name}` ({', '.join(f'{k} {len(v)}' for k, v in result.frames.items())} "
        f"rows): {features} features + {classifier}, {mode}. Test: {headline}."
    )


def register(model_uri: str, name: str, alias: str) -> None:
    """Register a logged model under `name` and point `alias` at the new version (`models:/name@alias`)."""
    version = mlflow.register_model(model_uri, name)
    mlflow.tracking.MlflowClient().set_registered_model_alias(name, alias, version.version)
