"""Sweeps in MLflow: one parent run per Hydra multirun, the jobs as its children, and a sorted comparison table."""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stance.tracking.console import quiet_libraries
from stance.tracking.redact import quiet_credentials, redact_config, redact_log_records, redact_overrides
from stance.tracking.signals import interrupt_on_signals

log = logging.getLogger(__name__)
PARENT_ENV = "STANCE_PARENT_RUN_ID"
SWEEP_TAG = "stance.sweep_dir"


def parent_run_id(cfg: DictConfig) -> str | None:
    """The sweep's parent run for a job: given by the Optuna sweeper as an override, or by `MlflowSweep`."""
    return cfg.get("mlflow_parent_run_id") or os.environ.get(PARENT_ENV)


def _client(config: DictConfig) -> tuple[Any, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    from stance.tracking.server import check_tracking_uri, set_experiment  # MLflow: once a sweep starts

    check_tracking_uri(config.mlflow.tracking_uri)  # fail now, not after MLflow's minutes of retries
    quiet_credentials(config.mlflow.tracking_uri)
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    experiment = set_experiment(config.mlflow.experiment)  # safe when two sweeps create it at once
    return MlflowClient(), experiment.experiment_id


def sweep_table(runs: list[Any], objective: str) -> pd.DataFrame:
    """One row per job: its overrides, status, and headline metrics, best objective first."""
    rows = []
    for run in runs:
        metrics = {k: v for k, v in run.data.metrics.items() if k.count("/") == 1}
        rows.append(
            {"run_id": run.info.run_id, "overrides": run.data.tags.get("overrides", ""), "status": run.info.status}
            | metrics
        )
    table = pd.DataFrame(rows, columns=None if rows else ["run_id", "overrides", "status"])
    if objective in table:
        table = table.sort_values(objective, ascending=False, na_position="last")
    return table.reset_index(drop=True)


def sweep_summary(table: pd.DataFrame, objective: str, status: str) -> str:
    """The console's end of a sweep: the best job, its objective and run, then every job with its scores.

    Jobs are named by the overrides that tell them apart; those they all share are said once, in the heading.
    """
    words = [str(o).split(" ") if isinstance(o, str) and o else [] for o in table.get("overrides", [])]
    shared = [w for w in words[0] if all(w in other for other in words)] if words else []
    jobs = [" ".join(w for w in job if w not in shared) or "(defaults)" for job in words]
    shown = table.assign(job=jobs)
    ranked = shown.dropna(subset=[objective]) if objective in shown else shown.iloc[0:0]
    if ranked.empty:
        head = f"sweep {status}: no job of {len(table)} has {objective}"
    else:
        best = ranked.iloc[0]
        head = f"best job: {best['job']}  {objective}={best[objective]:.4f}  (run {best['run_id']})"
    tested = "test/" + objective.split("/", 1)[-1]  # what the selected metric gives on test: shown, never selected on
    columns = ["job", "status", *(c for c in (objective, tested) if c in shown), "run_id"]
    common = f"; all with {' '.join(shared)}" if shared else ""
    if shown.empty:
        return head
    cells = shown[columns].astype(object).where(shown[columns].notna(), None)  # a failed job's scores: "-"
    body = cells.to_markdown(index=False, tablefmt="simple", floatfmt=".4f", missingval="-")
    return f"{head}\nsweep {status}, {len(table)} job(s), by {objective}{common}:\n{body}"


def sweep_figure(table: pd.DataFrame, objective: str) -> Any:
    """A horizontal bar chart of the objective per job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=[objective]).iloc[::-1] if objective in table else table.iloc[0:0]
    figure, axes = plt.subplots(figsize=(8, 1 + 0.4 * max(len(shown), 1)))
    axes.barh(shown["overrides"].str.slice(0, 70), shown.get(objective, []))
    axes.set_xlabel(objective)
    axes.set_title("sweep: jobs by objective")
    figure.tight_layout()
    return figure


def redact_hydra_files(config: DictConfig) -> None:
    """Mask secrets in the config and override files Hydra saved for this job (and its sweep) before it runs."""
    from pathlib import Path

    from omegaconf import OmegaConf

    files = []
    if config.hydra.output_subdir is not None:
        files += (Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)).glob("*.yaml")
    if config.hydra.mode is not None and str(config.hydra.mode) == "RunMode.MULTIRUN":
        files.append(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")
    for path in files:
        if not path.is_file():
            continue
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        shown = redact_config(saved)
        if shown != saved:  # atomically: parallel jobs of a sweep rewrite the same multirun.yaml
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            OmegaConf.save(OmegaConf.create(shown), partial)
            os.replace(partial, path)


class MlflowSweep(Callback):
    """Hydra callback: a parent MLflow run per multirun, closed with the jobs' sorted table and figure however the
    sweep ends (FINISHED, KILLED by Ctrl-C or SIGTERM, FAILED by a crash); secrets kept out of logs and saved files.
    """

    def __init__(self) -> None:
        self._parent: str | None = None
        self._signal: str | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Redact log messages from here on (MLflow logs run URLs)."""
        redact_log_records()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Redact log messages (also in a launcher's worker process) and the files Hydra just saved for the job."""
        redact_log_records()
        redact_hydra_files(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Create the parent run, unless the sweeper makes its own (the MLflow Optuna sweeper does)."""
        import atexit

        from stance.tracking.server import retry_busy

        redact_log_records()  # before the launcher logs each job's overrides
        quiet_libraries(config.get("verbose", False))  # before the store's set-up chatter
        if "MLflowOptuna" in str(config.hydra.sweeper.get("_target_", "")):
            return
        client, experiment_id = _client(config)
        overrides = " ".join(redact_overrides(config.hydra.overrides.task))
        run = retry_busy(
            lambda: client.create_run(
                experiment_id,
                run_name=f"sweep {overrides}"[:250],
                tags={SWEEP_TAG: config.hydra.sweep.dir, "mlflow.note.content": f"Hydra multirun: {overrides}"},
            )
        )
        os.environ[PARENT_ENV] = self._parent = run.info.run_id
        interrupt_on_signals(self._note_signal)
        # A signal or crash skips on_multirun_end: the parent is closed at exit instead (not after SIGKILL).
        atexit.register(self._close_unfinished, config)

    def _note_signal(self, name: str) -> None:
        self._signal = name

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Log the comparison table and figure to the parent run and close it."""
        from stance.tracking.server import retry_busy

        # Hydra turns a callback's exception into a warning, so say here why the parent was left to the exit hook.
        try:
            client, experiment_id = _client(config)
            children = client.search_runs([experiment_id], f"tags.`{SWEEP_TAG}` = '{config.hydra.sweep.dir}'")
            children = [run for run in children if "mlflow.parentRunId" in run.data.tags]
            parent = os.environ.get(PARENT_ENV) or (children[0].data.tags["mlflow.parentRunId"] if children else None)
            if parent is not None:
                retry_busy(lambda: self._finish(client, experiment_id, parent, config.objective, "FINISHED"))
        except Exception:
            log.exception("could not log the sweep's results to its parent run")
            raise
        os.environ.pop(PARENT_ENV, None)

    def _close_unfinished(self, config: DictConfig) -> None:
        """At exit: a parent still RUNNING was cut short, KILLED by a signal or FAILED by a crash."""
        import signal

        from stance.tracking.server import retry_busy

        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C or kill stops the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.pop(PARENT_ENV, None)
        if self._parent is None:
            return
        try:
            client, experiment_id = _client(config)
            if client.get_run(self._parent).info.status == "RUNNING":
                status = "KILLED" if self._signal else "FAILED"
                retry_busy(lambda: self._finish(client, experiment_id, self._parent, config.objective, status))
        except Exception:  # at exit there is no one to raise to; say what was left open
            log.exception("could not close the sweep's parent run %s", self._parent)

    @staticmethod
    def _finish(client: Any, experiment_id: str, parent: str, objective: str, status: str) -> None:
        """Log the jobs' table (and figure) to the parent run, then end it, and any job left RUNNING, as `status`."""
        # A resumed Optuna study adds trials to an earlier parent: compare all of them.
        children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
        for run in children:
            if status != "FINISHED" and run.info.status == "RUNNING":  # cut short before it could close itself
                client.set_terminated(run.info.run_id, status)
        children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
        table = sweep_table(children, objective)
        client.log_text(parent, table.to_csv(index=False), "sweep_results.csv")
        if len(table):
            client.log_table(parent, table, "sweep_results.json")
            client.log_figure(parent, sweep_figure(table, objective), "sweep_objective.png")
        if objective in table and table[objective].notna().any():
            client.log_metric(parent, f"best/{objective}", float(table[objective].max()))
        if client.get_run(parent).info.status == "RUNNING":
            client.set_terminated(parent, status)
        log.info("sweep results: %d jobs logged to parent run %s (%s)", len(table), parent, status)
        print(sweep_summary(table, objective, status), flush=True)
