"""`stance compare`: two MLflow runs' test predictions, fetched (or re-predicted from config and model), compared.

The statistics are `stance.evaluation.compare`'s; this module reads runs, so it sits above the sub-packages with
the other modules that read configs (re-predicting builds a run's data from its logged config).
"""

from __future__ import annotations

import re
import tempfile

import pandas as pd
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from stance.artifact.load import load_model
from stance.config import build
from stance.data.schema import to_frame, validate
from stance.evaluation.compare import Comparison, ComparisonError, compare_predictions
from stance.tracking.redact import redact_text
from stance.tracking.server import absolute_uri, sqlite_path

PREDICTIONS = "predictions_test.parquet"


def compare_runs(
    run_a: str, run_b: str, tracking_uri: str | None = None, n_resamples: int = 5000, seed: int = 0
) -> Comparison:
    """Compare two runs' test predictions row by row: B - A in F_avg (macro-F1 without FAVOR/AGAINST)."""
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    file = sqlite_path(uri)
    if file is not None and not file.is_file():  # MLflow would create an empty store just to look
        raise ComparisonError(
            f"No MLflow store at {redact_text(absolute_uri(uri))} (none was created): run `stance compare` where the "
            "runs' mlflow.db is, or give --tracking-uri sqlite:////path/to/mlflow.db."
        )
    client = MlflowClient(tracking_uri=uri)
    run_a, run_b = (resolve_run_id(run, client) for run in (run_a, run_b))
    name_a, name_b = (client.get_run(run).info.run_name for run in (run_a, run_b))
    a, b = run_predictions(run_a, client), run_predictions(run_b, client)
    return compare_predictions(a, b, run_a, run_b, name_a, name_b, n_resamples, seed)


def run_predictions(run_id: str, client: MlflowClient) -> pd.DataFrame:
    """A run's per-row test predictions: its `predictions_test.parquet` artifact, else its model re-predicting."""
    if PREDICTIONS not in {a.path for a in client.list_artifacts(run_id)}:
        return repredict(run_id, client)
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(_download(run_id, PREDICTIONS, client, tmp))


def repredict(run_id: str, client: MlflowClient) -> pd.DataFrame:
    """The test split rebuilt from the run's logged config, with the run's logged model's predictions."""
    with tempfile.TemporaryDirectory() as tmp:  # the model loads into memory; its encoder loads by name
        try:
            cfg = OmegaConf.load(_download(run_id, "config.yaml", client, tmp))
            model = load_model(_download(run_id, "model", client, tmp))
        except MlflowException:
            raise ComparisonError(
                f"Run {run_id} has no {PREDICTIONS}, and no config.yaml and model to re-predict with."
            ) from None
    data = build(cfg.data)
    if "test" not in data:
        raise ComparisonError(f"Run {run_id}'s data has no test split (splits: {list(data)}).")
    # The same checks as in training, so rows dropped then are dropped now.
    frames, _ = validate({split: to_frame(ds) for split, ds in data.items()}, **cfg.data_checks)
    return frames["test"].assign(predicted=model.predict(frames["test"]))


def _download(run_id: str, path: str, client: MlflowClient, folder: str) -> str:
    """A run's artifact or logged model (`runs:/` resolves both) downloaded into `folder`."""
    import mlflow

    return mlflow.artifacts.download_artifacts(
        f"runs:/{run_id}/{path}", dst_path=folder, tracking_uri=client.tracking_uri
    )


def resolve_run_id(run_id: str, client: MlflowClient) -> str:
    """The full id of the one run whose id is `run_id` or starts with it (e.g. the 8 characters the UI shows)."""
    try:
        return client.get_run(run_id).info.run_id
    except MlflowException:
        pass
    store = redact_text(client.tracking_uri)
    if not re.fullmatch(r"[0-9a-f]{1,31}", run_id):
        raise ComparisonError(f"No run {run_id!r} in the MLflow store {store}.")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    found = client.search_runs(experiments, f"attributes.run_id LIKE '{run_id}%'", ViewType.ALL, max_results=3)
    if len(found) == 1:
        return found[0].info.run_id
    if not found:
        raise ComparisonError(f"No run {run_id!r} (nor one whose id starts with it) in the MLflow store {store}.")
    ids = ", ".join(run.info.run_id for run in found[:2])
    raise ComparisonError(f"{run_id!r} starts more than one run id in {store} ({ids}, ...): give more characters.")
