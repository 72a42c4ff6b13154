"""stance: stance, topic and claim classification experiments with embeddings, scikit-learn, Hydra and MLflow."""

from typing import Any

__all__ = ["load_model"]


def load_model(uri: str) -> Any:
    """Load a logged model (`runs:/<id>/model`, `models:/<name>@<alias>` or a local path) as a fitted pipeline."""
    from stance.tracking import load_model as _load

    return _load(uri)
