"""Loading a logged model back: its MLmodel read, versions compared, the pipeline file opened under the trust policy."""

from __future__ import annotations

import importlib.metadata
import logging
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

log = logging.getLogger(__name__)


class ModelVersionWarning(UserWarning):
    """A model was logged with other versions of stance or its libraries than the installed ones."""


def load_model(uri: str, allow_pickle: bool = False) -> Any:
    """The fitted scikit-learn model behind a `runs:/`, `models:/` or local-path MLflow model URI.

    Reads the pipeline file itself rather than through pyfunc, which would run the model's logged code file; warns
    (`ModelVersionWarning`) when the model was logged with other versions of stance or its libraries. A pickled
    pipeline is refused (`UntrustedModelError`) unless `allow_pickle`.
    """
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(uri))
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
