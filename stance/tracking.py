"""MLflow: one run per experiment, with params, tags, metrics, tables, figures and the model as pyfunc."""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature

PYFUNC_NAME = "model"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as `a.b.c: value` params."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


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
    """An active MLflow run; an exception or Ctrl-C inside ends it FAILED, never left RUNNING."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        yield run


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


class StanceModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: a frame of `text` (+ `target`) in, `label` and `proba_<class>` columns out."""

    def load_context(self, context: Any) -> None:
        """Load the fitted pipeline; its embedder loads the encoder by name on first use."""
        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Labels and class probabilities."""
        return predict_frame(self.pipeline, model_input)


def predict_frame(model: Any, data: pd.DataFrame) -> pd.DataFrame:
    """Labels and class probabilities as one frame."""
    proba = model.predict_proba(data)
    out = pd.DataFrame({"label": model.classes_[proba.argmax(axis=1)]})
    for i, name in enumerate(model.classes_):
        out[f"proba_{name}"] = proba[:, i]
    return out


def log_model(model: Any, example: pd.DataFrame, metadata: dict[str, Any], requirements: list[str]) -> str:
    """Log the fitted pipeline as a pyfunc model with signature and input example; returns its URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.joblib"
        joblib.dump(model, path)
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"pipeline": str(path)},
            signature=infer_signature(example, predict_frame(model, example)),
            input_example=example,
            pip_requirements=requirements,
            metadata=metadata,
        )
    return info.model_uri


def load_model(uri: str) -> Any:
    """The fitted scikit-learn model behind a `runs:/`, `models:/` or local-path MLflow model URI."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().pipeline


def log_result(result: Any, cfg: Any, peak_rss_mb: float) -> None:
    """Log metrics, timings, the dataset, the resolved config, per-target table, confusion matrices and model."""
    from omegaconf import OmegaConf

    from stance.metrics import confusion_figure
    from stance.model import embedding_models, requirements

    mlflow.log_metrics(result.evaluation.metrics)
    mlflow.log_metrics({f"time/{k}_seconds": v for k, v in result.seconds.items()} | {"peak_rss_mb": peak_rss_mb})
    data_name = str(cfg.data.get("_target_", "data")).rsplit(".", 1)[-1]
    digest = log_dataset(result.frames, data_name, source=str(cfg.data.get("root") or "$STANCE_DATA"))
    mlflow.set_tag("data_digest", digest)
    mlflow.log_metrics({f"data/rows/{split}": len(frame) for split, frame in result.frames.items()})
    mlflow.log_metrics({f"data/dropped/{reason}": n for reason, n in result.report.dropped.items()})
    mlflow.log_dict({"warnings": result.report.warnings, "dropped": result.report.dropped}, "data_report.json")
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    per_target = result.evaluation.per_target
    mlflow.log_table(per_target, "per_target.json")
    mlflow.log_text(per_target.to_csv(index=False), "per_target.csv")
    for split, predictions in result.evaluation.predictions.items():
        figure = confusion_figure(predictions, f"{data_name} {split}")
        mlflow.log_figure(figure, f"confusion_matrix_{split}.png")
        figure.clf()
    if cfg.mlflow.log_model:
        example = result.frames["train"][["text", "target"]].head(3).reset_index(drop=True)
        metadata = {"embedding_models": embedding_models(result.model), "stance_version": _version()}
        log_model(result.model, example, metadata, requirements())


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("stance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
