"""The logged model as MLflow pyfunc: a frame of statements in, labels, scores and class probabilities out."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from stance.artifact.load import load_pipeline, weight_folders
from stance.features.encoders import forget_vectors
from stance.models.cross_encoder import attach_weights


class StanceModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: a frame of `text` (+ `target`) in, `label` and `proba_<class>` columns out."""

    def load_context(self, context: Any) -> None:
        """Load the fitted pipeline; its embedder loads the encoder by name on first use."""
        # pyfunc loading already runs this model's own code file, so refusing its pickle would protect nothing;
        # `stance.load_model` is the loader that runs no code from the model.
        pipeline = load_pipeline(context.artifacts["pipeline"], allow_pickle=True)
        self.pipeline = attach_weights(pipeline, weight_folders(context.artifacts))
        self.task = dict(context.model_config or {})

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """What the task means: a label and class probabilities, a claim score, or a set of topics."""
        try:
            return predict_frame(self.pipeline, model_input, self.task)
        finally:
            forget_vectors()  # a server or Spark worker predicts for ever: keep vectors on disk, not in memory


def predict_frame(model: Any, data: pd.DataFrame, task: dict[str, Any] | None = None) -> pd.DataFrame:
    """Labels (or label sets joined by "|") and class probabilities as one frame; claims also get a `score`."""
    task = task or {}
    proba = model.predict_proba(data)
    if task.get("multilabel"):
        out = pd.DataFrame({"labels": ["|".join(map(str, labels)) for labels in model.predict(data)]})
    else:
        out = pd.DataFrame({"label": [str(c) for c in model.classes_[proba.argmax(axis=1)]]})
    if task.get("positive_label") is not None:
        out["score"] = proba[:, [str(c) for c in model.classes_].index(str(task["positive_label"]))]
    for i, name in enumerate(model.classes_):
        out[f"proba_{name}"] = proba[:, i]
    return out
