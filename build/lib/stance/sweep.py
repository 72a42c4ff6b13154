"""Sweeps in MLflow: one parent run per Hydra multirun, the jobs as its children, and a sorted comparison table."""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)
PARENT_ENV = "STANCE_PARENT_RUN_ID"
SWEEP_TAG = "stance.sweep_dir"


def parent_run_id(cfg: DictConfig) -> str | None:
    """The sweep's parent run for a job: given by the Optuna sweeper as an override, or by `MlflowSweep`."""
    return cfg.get("mlflow_parent_run_id") or os.environ.get(PARENT_ENV)


def _client(config: DictConfig) -> tuple[Any, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    from stance.tracking import check_tracking_uri, set_experiment

    check_tracking_uri(config.mlflow.tracking_uri)  # fail now, not after MLflow's minutes of retries
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
    table = pd.DataFrame(rows)
    if objective in table:
        table = table.sort_values(objective, ascending=False, na_position="last")
    return table.reset_index(drop=True)


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


class MlflowSweep(Callback):
    """Hydra callback: a parent MLflow run per multirun; at the end, the jobs' sorted table and figure on it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Create the parent run, unless the sweeper makes its own (the MLflow Optuna sweeper does)."""
        if "MLflowOptuna" in str(config.hydra.sweeper.get("_target_", "")):
            return
        client, experiment_id = _client(config)
        overrides = " ".join(config.hydra.overrides.task)
        run = client.create_run(
            experiment_id,
            run_name=f"sweep {overrides}"[:250],
            tags={SWEEP_TAG: config.hydra.sweep.dir, "mlflow.note.content": f"Hydra multirun: {overrides}"},
        )
        os.environ[PARENT_ENV] = run.info.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Log the comparison table and figure to the parent run and close it."""
        client, experiment_id = _client(config)
        children = client.search_runs([experiment_id], f"tags.`{SWEEP_TAG}` = '{config.hydra.sweep.dir}'")
        children = [run for run in children if "mlflow.parentRunId" in run.data.tags]
        parent = os.environ.pop(PARENT_ENV, None) or (children[0].data.tags["mlflow.parentRunId"] if children else None)
        if parent is None:
            return
        # A resumed Optuna study adds trials to an earlier parent: compare all of them.
        children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
        table = sweep_table(children, config.objective)
        client.log_text(parent, table.to_csv(index=False), "sweep_results.csv")
        client.log_table(parent, table, "sweep_results.json")
        client.log_figure(parent, sweep_figure(table, config.objective), "sweep_objective.png")
        if config.objective in table and table[config.objective].notna().any():
            client.log_metric(parent, f"best/{config.objective}", float(table[config.objective].max()))
        if client.get_run(parent).info.status == "RUNNING":
            client.set_terminated(parent, "FINISHED")
        log.info("sweep results: %d jobs logged to parent run %s", len(table), parent)
