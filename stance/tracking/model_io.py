"""Logged models: a pipeline written with skops, logged as pyfunc with its wheel, loaded back under the trust policy."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.models import infer_signature

from stance.models.walk import estimators
from stance.tracking.pyfunc import predict_frame

PYFUNC_NAME = "model"
# Where MLflow puts a pyfunc model's artifacts, relative to the model folder (holds the stance wheel).
MODEL_WHEEL_DIR = "artifacts"
log = logging.getLogger(__name__)


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """The signature inferred from the example; inputs other than `text` and `target` (context columns) optional."""
    from mlflow.types.schema import ColSpec, Schema

    signature = infer_signature(example, output)
    signature.inputs = Schema(
        [ColSpec(c.type, c.name, required=c.name in ("text", "target")) for c in signature.inputs.inputs]
    )
    return signature


def log_model(
    model: Any, example: pd.DataFrame, metadata: dict[str, Any], requirements: list[str], task: dict[str, Any]
) -> str:
    """Log the fitted pipeline as a pyfunc model with signature and input example; returns its URI.

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
    from stance.models.cross_encoder import fine_tuned_parts
    from stance.tracking.wheel import build_wheel

    with tempfile.TemporaryDirectory() as tmp:
        path = dump_pipeline(model, Path(tmp))
        if path.suffix == ".skops":
            requirements = [*requirements, f"skops=={importlib.metadata.version('skops')}"]
        wheel = build_wheel(Path(tmp) / "wheel")
        requirements = [*requirements, f"{MODEL_WHEEL_DIR}/{wheel.name}"]
        artifacts = {"pipeline": str(path), "stance_wheel": str(wheel)}
        for part in fine_tuned_parts(model):
            artifacts[f"{WEIGHTS_PREFIX}{part.weights_key_}"] = part.weights_path_
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts=artifacts,
            signature=_signature(example, predict_frame(model, example, task)),
            input_example=example,
            pip_requirements=requirements,
            metadata=metadata,
            model_config=task,
        )
    return info.model_uri


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
    from stance.models.cross_encoder import attach_weights

    artifacts = {name: local / spec["path"] for name, spec in meta.flavors["python_function"]["artifacts"].items()}
    for path in artifacts.values():  # the MLmodel is the model's own word: keep what it names inside its folder
        if not path.resolve().is_relative_to(local.resolve()):
            raise UntrustedModelError(f"Model {uri}: its MLmodel points outside the model folder, at {path.resolve()}.")
    return attach_weights(load_pipeline(artifacts["pipeline"].resolve(), allow_pickle), weight_folders(artifacts))


# Artifact names of fine-tuned weight folders inside a logged model: `weights-<key>`.
WEIGHTS_PREFIX = "weights-"


def weight_folders(artifacts: dict[str, Any]) -> dict[str, str]:
    """Fine-tuned weight folders among a logged model's artifacts, by weights key."""
    return {k.removeprefix(WEIGHTS_PREFIX): str(v) for k, v in artifacts.items() if k.startswith(WEIGHTS_PREFIX)}


class ModelVersionWarning(UserWarning):
    """A model was logged with other versions of stance or its libraries than the installed ones."""


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


# skops writes a vocabulary dict as one JSON node per term: above this many terms that takes minutes (about a minute
# and 50 MB per 100k terms), so scikit-learn's vectorizers are then stored with a compact one
# (stance.features.vocabulary).
SKOPS_MAX_TERMS = 50_000
# Modules whose classes a skops pipeline file may hold beyond skops's own defaults (numpy arrays and dtypes, builtins):
# scikit-learn, our own estimators, and sparse matrices.
TRUSTED_MODULES = ("sklearn", "stance", "scipy.sparse")


class UntrustedModelError(RuntimeError):
    """A logged pipeline would run code on load (a pickle, or types outside `TRUSTED_MODULES`), so it is not loaded."""


def dump_pipeline(model: Any, folder: Path) -> Path:
    """Write a fitted pipeline into `folder` with skops (no code runs on load), joblib for huge foreign vocabularies."""
    if vocabulary_size(model) > SKOPS_MAX_TERMS:
        model = _compact_vocabularies(model)
    terms = vocabulary_size(model, plain_only=True)
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
    _import_skops().dump(model, path)
    return path


def _compact_vocabularies(model: Any) -> Any:
    """A copy of `model` whose scikit-learn count/TF-IDF vectorizers store their vocabulary compactly."""
    import copy

    from stance.features.vocabulary import COMPACT

    model = copy.deepcopy(model)
    for part in estimators(model):
        if type(part) in COMPACT:
            part.__class__ = COMPACT[type(part)]  # same attributes and behaviour; only the stored state differs
    return model


def _import_skops() -> Any:
    """skops.io, imported without letting it import torch (which costs seconds and is not needed to save a pipeline).

    On import skops lists scikit-learn's estimators by walking every scikit-learn package, which imports the
    array-API shim for torch, and with it torch itself. The walk skips packages that fail to import, so the shim is
    made unimportable for the duration (only if nothing imported it already).
    """
    shim = "sklearn.externals.array_api_compat.torch"
    if "skops.io" in sys.modules or shim in sys.modules:
        import skops.io

        return skops.io
    sys.modules[shim] = None  # type: ignore[assignment]  # None in sys.modules makes `import` raise ImportError
    try:
        import skops.io
    finally:
        del sys.modules[shim]
    return skops.io


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
    skops_io = _import_skops()
    types = skops_io.get_untrusted_types(file=path)
    with legacy_module_paths(types):
        untrusted = sorted(t for t in types if not _trusted_class(t))
        if untrusted:
            raise UntrustedModelError(
                f"{path} holds types that are not classes of {', '.join(TRUSTED_MODULES)}: {', '.join(untrusted)}. "
                "Not loading it; if you trust where it came from, load it with skops.io.load(path, trusted=[...those "
                "types])."
            )
        return skops_io.load(path, trusted=types)


# Where the classes that model files name by their module path live now: models logged before stance became
# sub-packages name e.g. `stance.model.PerTarget` or `stance.features.SentenceEmbedder`.
LEGACY_MODULES = {
    "stance.model": ("stance.models.estimators", "stance.models.per_target"),
    "stance.features": ("stance.features.encoders",),
    "stance.context": ("stance.features.context",),
    "stance.vocabulary": ("stance.features.vocabulary",),
    "stance.cross_encoder": ("stance.models.cross_encoder",),
}


@contextmanager
def legacy_module_paths(names: Iterable[str] | None = None) -> Iterator[None]:
    """While a model file is read, the old module paths it names (all, without `names`) offer the classes moved away.

    An old path that is now a package (`stance.features`) lends it the names for the duration; one that is gone
    (`stance.model`) is a stand-in module in `sys.modules`. Either way the classes are the new ones, so the trust
    policy sees their real modules.
    """
    import importlib
    import inspect
    import types

    lent: list[tuple[Any, str]] = []
    replaced: dict[str, Any] = {}
    named = None if names is None else {name.rpartition(".")[0] for name in names}
    for old, new in LEGACY_MODULES.items():
        if named is not None and old not in named:
            continue
        if any(name.startswith(f"{old}.") for name in new):
            module = importlib.import_module(old)
        else:
            replaced[old] = sys.modules.get(old)
            module = sys.modules[old] = types.ModuleType(old)
        for name in new:
            for attribute, value in vars(importlib.import_module(name)).items():
                if inspect.isclass(value) and value.__module__ == name and not hasattr(module, attribute):
                    setattr(module, attribute, value)
                    lent.append((module, attribute))
    try:
        yield
    finally:
        for module, attribute in lent:
            if module.__name__ not in replaced:
                delattr(module, attribute)
        for old, previous in replaced.items():
            if previous is None:
                del sys.modules[old]
            else:
                sys.modules[old] = previous


def _trusted_class(name: str) -> bool:
    """Whether `module.Name` is a class defined in one of `TRUSTED_MODULES` (skops instantiates, even calls, it).

    Being in a trusted module is not enough: `stance.config.instantiate` is Hydra's function imported there, and a
    crafted file could have skops call it; numpy and scipy classes beyond sparse matrices can touch files when built.
    """
    import importlib
    import inspect

    def inside(module: str) -> bool:
        return any(module == m or module.startswith(f"{m}.") for m in TRUSTED_MODULES)

    module, _, attribute = name.rpartition(".")
    if not inside(module):
        return False
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return False
    return inspect.isclass(found) and inside(getattr(found, "__module__", None) or "")


def vocabulary_size(model: Any, plain_only: bool = False) -> int:
    """Terms in all fitted n-gram vocabularies (`vocabulary_`) of `model` and the estimators nested in it.

    plain_only: count only vocabularies stored as dicts (not those of the compact vectorizers of
    `stance.features.vocabulary`).
    """
    from stance.features.vocabulary import COMPACT

    compact = tuple(COMPACT.values())
    return sum(
        len(part.vocabulary_)
        for part in estimators(model)
        if isinstance(getattr(part, "vocabulary_", None), dict) and not (plain_only and isinstance(part, compact))
    )


def embedding_models(model: Any) -> list[str]:
    """Identities (name and version) of the embedding models a fitted model refers to."""
    return sorted({part.model_identity_ for part in estimators(model) if hasattr(part, "model_identity_")})


def requirements(model: Any = None) -> list[str]:
    """Pinned requirements of a logged model: the libraries its pipeline needs and the packages holding its encoders."""
    from stance.features.encoders import packaged_distributions

    names = ["scikit-learn", "sentence-transformers", "torch", "pandas", "numpy"]
    for part in estimators(model) if model is not None else []:
        if isinstance(getattr(part, "model", None), str):
            names += [d for d in packaged_distributions(part.model) if d not in names]
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
