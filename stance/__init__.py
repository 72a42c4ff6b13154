"""stance: stance, topic and claim classification experiments with embeddings, scikit-learn, Hydra and MLflow."""

import os
from typing import Any

# MLflow's usage telemetry cannot reach its endpoint offline; its thread then removes an environment variable while
# the main thread may be copying os.environ (a KeyError that cost a sweep its parent run). Off unless set.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# A light module (its heavy imports happen on call). The function lives in `stance.analysis.analyze`, so no module
# of this package is named like it and `stance.analyze` is always the function.
from stance.analysis.analyze import analyze

__all__ = ["analyze", "load_model"]


def load_model(uri: str, allow_pickle: bool = False) -> Any:
    """Load a logged model (`runs:/<id>/model`, `models:/<name>@<alias>` or a local path) as a fitted pipeline.

    No code from the model runs: a pickled pipeline is refused unless `allow_pickle=True` (only for models you trust).
    """
    from stance.tracking.model_io import load_model as _load

    return _load(uri, allow_pickle=allow_pickle)
