"""Loading a logged model back: its MLmodel read, versions compared, the pipeline file opened under the trust policy."""

from __future__ import annotations

import importlib.metadata
import logging
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import joblib
import mlflow

from stance.artifact.trust import (
    TRUSTED_MODULES,
    UntrustedModelError,
    import_skops,
    legacy_module_paths,
    untrusted_types,
)
from stance.features.pretrained import WEIGHTS_PREFIX
from stance.models.cross_encoder import attach_weights
from stance.tracking.redact import redact_text
from stance.tracking.server import absolute_uri, first_line, sqlite_path

log = logging.getLogger(__name__)


class ModelVersionWarning(UserWarning):
    """A model was logged with other versions of stance or its libraries than the installed ones."""


class ModelNotFoundError(ValueError):
    """A model URI names nothing where it is looked up; the message names the store (or folder) and the fix."""


def load_model(uri: str, allow_pickle: bool = False, tracking_uri: str | None = None) -> Any:
    """The fitted scikit-learn model behind a `runs:/`, `models:/` or local-path MLflow model URI.

    Reads the pipeline file itself rather than through pyfunc, which would run the model's logged code file; warns
    (`ModelVersionWarning`) when the model was logged with other versions of stance or its libraries. A pickled
    pipeline is refused (`UntrustedModelError`) unless `allow_pickle`. tracking_uri: see `fetch_model`.
    """
    from mlflow.models import Model

    local = fetch_model(uri, tracking_uri)
    meta = Model.load(local / "MLmodel")
    requirements = local / "requirements.txt"
    logged = requirements.read_text().splitlines() if requirements.is_file() else []
    mismatches = version_mismatches((meta.metadata or {}).get("stance_version"), logged)
    if mismatches:
        warnings.warn(
            f"Model {uri} was logged with other versions than installed here: {'; '.join(mismatches)}. Predictions "
            f"may differ or loading may fail: install the logged versions (pip install -r {requirements}) or retrain.",
            ModelVersionWarning,
            stacklevel=2,
        )
    artifacts = {name: local / spec["path"] for name, spec in meta.flavors["python_function"]["artifacts"].items()}
    for path in artifacts.values():  # the MLmodel is the model's own word: keep what it names inside its folder
        if not path.resolve().is_relative_to(local.resolve()):
            raise UntrustedModelError(f"Model {uri}: its MLmodel points outside the model folder, at {path.resolve()}.")
    return attach_weights(load_pipeline(artifacts["pipeline"].resolve(), allow_pickle), weight_folders(artifacts))


def fetch_model(uri: str, tracking_uri: str | None = None) -> Path:
    """The local folder of a model URI (`runs:/`, `models:/`, a folder or another artifact URI), downloaded if remote.

    tracking_uri: the store holding the run or registered model; by default MLflow's (`$MLFLOW_TRACKING_URI`,
    `mlflow.set_tracking_uri`, else `mlflow.db` in the working folder). A missing SQLite store is not created (MLflow
    would leave an empty one behind), and a model the store lacks is a `ModelNotFoundError` naming the store.
    """
    from mlflow.exceptions import MlflowException

    scheme = urllib.parse.urlparse(uri).scheme
    if scheme not in ("runs", "models"):
        if "://" not in uri and not Path(uri).exists():
            raise ModelNotFoundError(
                f"Cannot load {uri}: there is no model folder at {Path(uri).absolute()}. Give a model folder, "
                "runs:/<run id>/model or models:/<name>@<alias>."
            )
        return Path(mlflow.artifacts.download_artifacts(uri))
    tracking, registry = tracking_uri or mlflow.get_tracking_uri(), tracking_uri or mlflow.get_registry_uri()
    looked_in = registry if scheme == "models" else tracking
    store = redact_text(absolute_uri(looked_in))
    file = sqlite_path(looked_in)
    if file is not None and not file.is_file():
        raise ModelNotFoundError(
            f"Cannot load {uri}: it is looked up in the MLflow store {store}, and there is no such file (none was "
            f"created). {_elsewhere(uri)}"
        )
    try:
        location = _artifact_location(uri, mlflow.tracking.MlflowClient(tracking, registry))
    except MlflowException as err:
        missing = scheme == "runs" and err.error_code == "RESOURCE_DOES_NOT_EXIST"
        lacks = f"has no run {uri.split('/')[1]}" if missing else f"says: {first_line(err)}"
        raise ModelNotFoundError(f"Cannot load {uri}: the MLflow store {store} {lacks}. {_elsewhere(uri)}") from None
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, tracking_uri=tracking))
    except (MlflowException, OSError):
        run_id = uri.split("/")[1]
        raise ModelNotFoundError(
            f"Cannot load {uri}: run {run_id} in the MLflow store {store} has no model there (nothing at {location}; "
            f"a run's model is runs:/{run_id}/model)."
        ) from None


def _artifact_location(uri: str, client: Any) -> str:
    """The artifact URI a `runs:/` or `models:/` URI stands for, looked up in `client`'s store.

    Not MLflow's own lookup: that asks its global store for a logged model or a registered name, whatever store it
    is given (and creates `./mlflow.db` to do so).
    """
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    if uri.startswith("models:"):
        found = get_model_name_and_version(client, uri)
        if len(found) == 1:  # models:/m-<id>, a logged model
            return client.get_logged_model(found[0]).artifact_location
        return client.get_model_version_download_uri(*found)
    run_id, path = RunsArtifactRepository.parse_runs_uri(uri)
    run = client.get_run(run_id)
    name, _, rest = (path or "").partition("/")
    # A model logged before models were named after their run is a logged model named `model`; a later one is also
    # in the run's artifacts, under `model/`.
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"name = '{name}'") if name else []
    model = next((m for m in models if m.source_run_id == run_id), None)
    if model is not None:
        return f"{model.artifact_location}/{rest}".rstrip("/")
    return f"{run.info.artifact_uri}/{path or ''}".rstrip("/")


def _elsewhere(uri: str) -> str:
    """How to point the lookup of `uri` at another store (and, for a registered name, how to register one)."""
    point = (
        "the store it was logged to (the end of training prints it): "
        f'stance.load_model("{uri}", tracking_uri="sqlite:////path/to/mlflow.db"), or set MLFLOW_TRACKING_URI to it.'
    )
    registered = uri.removeprefix("models:/")
    if registered == uri or not {"@", "/"} & set(registered):  # a run's URI, or a logged model's id (models:/m-...)
        return f"Point at {point}"
    name = registered.split("@")[0].split("/")[0]
    return f"Register a run's model as {name} (python -m stance.train mlflow.register={name}), or point at {point}"


def weight_folders(artifacts: dict[str, Any]) -> dict[str, str]:
    """Fine-tuned weight folders among a logged model's artifacts, by weights key."""
    return {k.removeprefix(WEIGHTS_PREFIX): str(v) for k, v in artifacts.items() if k.startswith(WEIGHTS_PREFIX)}


def version_mismatches(stance_version: str | None, requirements: list[str]) -> list[str]:
    """`name logged (installed: other)` for stance and each pinned requirement whose installed version differs."""
    pins = [("stance", stance_version)] if stance_version else []
    pins += [(name.strip(), version.strip()) for name, sep, version in (r.partition("==") for r in requirements) if sep]
    out = []
    for name, logged in pins:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != logged:
            out.append(f"{name}=={logged} (installed: {installed})")
    return out


def load_pipeline(path: str | Path, allow_pickle: bool = False) -> Any:
    """Load a pipeline file with skops, allowing only classes of `TRUSTED_MODULES`; a pickle only if `allow_pickle`."""
    path = Path(path)
    if path.suffix != ".skops":
        if not allow_pickle:
            raise UntrustedModelError(
                f"{path} is a pickle ({path.suffix or 'no suffix'}): loading it would run any code the file holds, so "
                "it is not loaded. Models written by stance are skops files; a pickle comes from an older version, a "
                "pipeline with a huge foreign vectorizer, or someone else. If you trust where it came from, load it "
                "with stance.load_model(uri, allow_pickle=True)."
            )
        log.warning("%s is a pickle: loading it runs code from the file (allow_pickle=True was given).", path)
        with legacy_module_paths():
            return joblib.load(path)
    skops_io = import_skops()
    types = skops_io.get_untrusted_types(file=path)
    with legacy_module_paths(types):
        untrusted = untrusted_types(types)
        if untrusted:
            raise UntrustedModelError(
                f"{path} holds types that are not classes of {', '.join(TRUSTED_MODULES)}: {', '.join(untrusted)}. "
                "Not loading it; if you trust where it came from, load it with skops.io.load(path, trusted=[...those "
                "types])."
            )
        return skops_io.load(path, trusted=types)
