"""stance: stance, topic and claim classification experiments with embeddings, scikit-learn, Hydra and MLflow."""

import functools
import os
from typing import Any

# MLflow's usage telemetry cannot reach its endpoint offline; its thread then removes an environment variable while
# the main thread may be copying os.environ (a KeyError that cost a sweep its parent run). Off unless set.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# A light module (its heavy imports happen on call). The function lives in `stance.analysis.analyze`, so no module
# of this package is named like it and `stance.analyze` is always the function.
from stance.analysis import analyze as _analysis

__all__ = ["analyze", "load_model"]


@functools.wraps(_analysis.analyze)
def analyze(*args: Any, **kwargs: Any) -> Any:
    # `stance.analysis.analyze.analyze`, training a default model the store lacks: the analysis layer does not import
    # training (stance.experiment sits above it), so the package's top hands it the trainer.
    kwargs.setdefault("train", _train_default)
    return _analysis.analyze(*args, **kwargs)


def _train_default(kind: str, tracking_uri: str, limit: int | None = None) -> str:
    from stance.experiment import train_default  # Hydra and the training code: only when a model must be trained

    return train_default(kind, tracking_uri, limit)


def load_model(uri: str, allow_pickle: bool = False, tracking_uri: str | None = None) -> Any:
    """Load a logged model (`runs:/<id>/model`, `models:/<name>@<alias>` or a local path) as a fitted pipeline.

    No code from the model runs: a pickled pipeline is refused unless `allow_pickle=True` (only for models you trust).
    tracking_uri: the MLflow store holding the run or name (training prints it); default `$MLFLOW_TRACKING_URI`, else
    `mlflow.db` in the working folder.
    """
    from stance.artifact.load import load_model as _load

    return _load(uri, allow_pickle=allow_pickle, tracking_uri=tracking_uri)
