"""Saving a fitted pipeline with skops, and logging it as an MLflow pyfunc model with its wheel and requirements."""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.models import infer_signature

from stance.artifact.pyfunc import predict_frame
from stance.artifact.trust import import_skops
from stance.artifact.wheel import build_wheel
from stance.features.pretrained import WEIGHTS_PREFIX, packaged_distributions
from stance.features.vocabulary import COMPACT
from stance.models.walk import ModelParts, model_parts

# Where a run's model sits among the run's artifacts: `runs:/<run id>/model`.
PYFUNC_NAME = "model"
# MLflow's limit on a logged model's name is 500 characters; a sweep job's run name (its overrides) can be longer.
MAX_NAME = 250
# Where MLflow puts a pyfunc model's artifacts, relative to the model folder (holds the stance wheel).
MODEL_WHEEL_DIR = "artifacts"
# skops writes a vocabulary dict as one JSON node per term: above this many terms that takes minutes (about a minute
# and 50 MB per 100k terms), so scikit-learn's vectorizers are then stored with a compact one
# (stance.features.vocabulary).
SKOPS_MAX_TERMS = 50_000
log = logging.getLogger(__name__)


def log_trained(model: Any, train: pd.DataFrame, task: Any, parts: ModelParts | None = None) -> str:
    """Log an experiment's fitted model (input example from its training rows, metadata, requirements); its URI.

    parts: the model's parts if already found (`models.walk.model_parts`), so that it is walked once.
    """
    parts = model_parts(parts or model)
    # Context columns travel with the example, so the pyfunc passes them on (as optional inputs).
    context = [c for c in ("group", *getattr(task, "keep_columns", ())) if c in train.columns]
    example = train[["text", "target", *context]].head(3).reset_index(drop=True)
    metadata = {"embedding_models": parts.embedding_models, "stance_version": stance_version()}
    uri = log_model(model, example, metadata, requirements(parts), task.describe(), parts=parts, name=run_model_name())
    # Also in the run's artifacts, where `runs:/<run id>/model` and the run's Artifacts tab find it.
    location = mlflow.get_logged_model(uri.removeprefix("models:/")).artifact_location
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.log_artifacts(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp), PYFUNC_NAME)
    return uri


def run_model_name() -> str:
    """A name for the active run's model: its experiment and run (`stance-classifier=svm`), as MLflow allows names."""
    run = mlflow.active_run()
    name = f"{mlflow.get_experiment(run.info.experiment_id).name}-{run.info.run_name}"
    return re.sub(r"[/:.%\"']", "_", name)[:MAX_NAME]


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """The signature inferred from the example; inputs other than `text` and `target` (context columns) optional."""
    from mlflow.types.schema import ColSpec, Schema

    signature = infer_signature(example, output)
    signature.inputs = Schema(
        [ColSpec(c.type, c.name, required=c.name in ("text", "target")) for c in signature.inputs.inputs]
    )
    return signature


def log_model(
    model: Any,
    example: pd.DataFrame,
    metadata: dict[str, Any],
    requirements: list[str],
    task: dict[str, Any],
    parts: ModelParts | None = None,
    name: str = PYFUNC_NAME,
) -> str:
    """Log the fitted pipeline as a pyfunc model named `name`, with signature and input example; returns its URI.

    The model is self-contained: it carries a wheel of the running `stance` package, named in its requirements.txt
    by a path relative to the model folder (`artifacts/stance-<version>-py3-none-any.whl`), which is how MLflow's
    environment managers resolve it (they install with the model folder as working directory). A wheel rather than
    MLflow's `code_paths`: code paths only help `mlflow.pyfunc.load_model`, while the wheel also makes `import
    stance` (hence `stance.load_model`, the `stance` command and Spark executors built from the requirements) work
    in an environment made from the model alone, and it brings the package's own dependencies with it (the cost:
    those include what only training needs, such as Hydra and datasets).
    Fine-tuned weights are new knowledge, not a name to look up: each folder travels inside the model as an artifact
    `weights-<key>`, so the model predicts on a machine whose cache never saw them.
    """
    parts = model_parts(parts or model)
    with tempfile.TemporaryDirectory() as tmp:
        path = dump_pipeline(model, Path(tmp), parts)
        if path.suffix == ".skops":
            requirements = [*requirements, f"skops=={importlib.metadata.version('skops')}"]
        wheel = build_wheel(Path(tmp) / "wheel")
        requirements = [*requirements, f"{MODEL_WHEEL_DIR}/{wheel.name}"]
        artifacts = {"pipeline": str(path), "stance_wheel": str(wheel)}
        for part in parts.fine_tuned:
            artifacts[f"{WEIGHTS_PREFIX}{part.weights_key_}"] = part.weights_path_
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts=artifacts,
            signature=_signature(example, predict_frame(model, example, task)),
            input_example=example,
            pip_requirements=requirements,
            metadata=metadata,
            model_config=task,
        )
    return info.model_uri


def dump_pipeline(model: Any, folder: Path, parts: ModelParts | None = None) -> Path:
    """Write a fitted pipeline into `folder` with skops (no code runs on load), joblib for huge foreign vocabularies."""
    parts = model_parts(parts or model)
    if vocabulary_size(parts) > SKOPS_MAX_TERMS:
        model, parts = _compact_vocabularies(model)
    terms = vocabulary_size(parts, plain_only=True)
    if terms > SKOPS_MAX_TERMS:  # vectorizers other than scikit-learn's own, which cannot be stored compactly
        log.warning(
            "The pipeline has %d n-gram terms in vectorizers skops cannot store quickly: stored with joblib (pickle), "
            "so loading it needs stance.load_model(uri, allow_pickle=True).",
            terms,
        )
        path = folder / "pipeline.joblib"
        joblib.dump(model, path)
        return path
    path = folder / "pipeline.skops"
    import_skops().dump(model, path)
    return path


def _compact_vocabularies(model: Any) -> tuple[Any, ModelParts]:
    """A copy of `model` whose scikit-learn count/TF-IDF vectorizers store their vocabulary compactly, and its parts."""
    model = copy.deepcopy(model)
    parts = model_parts(model)
    for part in parts.estimators:
        if type(part) in COMPACT:
            part.__class__ = COMPACT[type(part)]  # same attributes and behaviour; only the stored state differs
    return model, parts


def vocabulary_size(model: Any, plain_only: bool = False) -> int:
    """Terms in all fitted n-gram vocabularies (`vocabulary_`) of `model` (or its parts) and the estimators in it.

    plain_only: count only vocabularies stored as dicts (not those of the compact vectorizers of
    `stance.features.vocabulary`).
    """
    compact = tuple(COMPACT.values())
    return sum(
        len(part.vocabulary_)
        for part in model_parts(model).estimators
        if isinstance(getattr(part, "vocabulary_", None), dict) and not (plain_only and isinstance(part, compact))
    )


def embedding_models(model: Any) -> list[str]:
    """Identities (name and version) of the embedding models a fitted model (or its parts) refers to."""
    return model_parts(model).embedding_models


def requirements(model: Any = None) -> list[str]:
    """Pinned requirements of a logged model: the libraries its pipeline needs and the packages holding its encoders.

    model: the fitted model or its parts (`models.walk.model_parts`); None: the libraries only.
    """
    names = ["scikit-learn", "sentence-transformers", "torch", "pandas", "numpy"]
    parts = model_parts(model) if model is not None else None
    for encoder in parts.encoder_names if parts else []:
        names += [d for d in packaged_distributions(encoder) if d not in names]
    for part in parts.estimators if parts else []:  # a part's own client libraries (classifier=llm_endpoint: openai)
        names += [d for d in getattr(type(part), "REQUIREMENTS", ()) if d not in names]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def stance_version() -> str:
    """The installed version of stance, `unknown` when it runs from a tree that is not installed."""
    try:
        return importlib.metadata.version("stance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
