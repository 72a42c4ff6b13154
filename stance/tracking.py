"""MLflow: one run per experiment, with params, tags, metrics, tables, figures and the model as pyfunc."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature

PYFUNC_NAME = "model"
# Where MLflow puts a pyfunc model's artifacts, relative to the model folder (holds the stance wheel).
MODEL_WHEEL_DIR = "artifacts"
log = logging.getLogger(__name__)


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


class TrackingError(RuntimeError):
    """The MLflow tracking URI cannot be used; the message names it and says how to fix it."""


# Database stores are probed with one connection: MLflow's own engine set-up retries for minutes.
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with a `TrackingError` unless `uri` is a usable MLflow store or a live MLflow tracking server."""
    import requests
    from mlflow.tracking import MlflowClient

    fix = "Set mlflow.tracking_uri=... to a store or a running server (sqlite:///mlflow.db, http://HOST:5000, ...)"
    shown = redact_text(uri)
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        try:
            answer = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
        except requests.RequestException as err:
            raise TrackingError(
                f"MLflow tracking server {shown} is unreachable ({type(err).__name__}): start it "
                f"(mlflow server --host HOST --port PORT ...; README, 'Scaling out'). {fix}."
            ) from None
        if answer.status_code != 200 or answer.text.strip() != "OK":
            raise TrackingError(
                f"{shown} is not an MLflow tracking server: GET /health answered HTTP {answer.status_code}. {fix}."
            )
    elif scheme in _DATABASE_SCHEMES:
        _probe_database(uri, shown, fix, timeout)
    try:
        with _sqlite_init_lock(uri):
            MlflowClient(tracking_uri=uri)  # resolves the store for the scheme (and creates a SQLite file)
    except Exception as err:  # MLflow raises several types for an unknown scheme or a bad store
        schemes = getattr(err, "supported_uri_schemes", None)
        reason = f"unknown scheme (MLflow knows {', '.join(filter(None, schemes))})" if schemes else _first_line(err)
        raise TrackingError(f"MLflow cannot use tracking URI {shown}: {reason}. {fix}.") from None


@contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    """Serialise first use of a SQLite store: MLflow's schema migration races when two processes create it at once."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0] or "mlflow.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300].rstrip(".") if text else type(err).__name__


def _probe_database(uri: str, shown: str, fix: str, timeout: float) -> None:
    import sqlalchemy

    connect_args = {"connect_timeout": int(timeout)} if uri.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except ImportError as err:
        raise TrackingError(
            f"No driver for the MLflow database {shown} ({err}): pip install -e '.[postgres]' (PostgreSQL) "
            "or the SQLAlchemy driver of your database."
        ) from None
    except Exception as err:  # driver errors differ per database; all mean the store is unusable
        raise TrackingError(f"Cannot connect to the MLflow database {shown}: {_first_line(err)}. {fix}.") from None


# Config keys whose values are credentials, matched on the last part of a flattened name.
_SECRET_WORDS = r"token|passw(?:or)?d|secret|credentials?|(?:api|access|private)?_?key"
_SECRET_KEY = re.compile(rf"(?:^|[._-])(?:{_SECRET_WORDS})$", re.I)
_ASSIGNMENT = re.compile(r"(?P<key>[^\s,=]+)=(?P<value>[^\s,]+)")
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|KEY|AUTH", re.I)
# Also in Hydra's escaped form of an override value (`http\://user\:password@host`), as sweeps write it.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*\\?://[^/:@\s]*:)[^@/\s]+@", re.I)
REDACTED = "***"


def redact_text(text: str) -> str:
    """`text` with URL passwords and the values of secret-looking environment variables masked."""
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    # Overrides in tags and run names: `+db.password=...`.
    text = _ASSIGNMENT.sub(lambda m: f"{m['key']}={REDACTED}" if _SECRET_KEY.search(m["key"]) else m[0], text)
    for name, value in os.environ.items():
        # Short values (e.g. "1", "true") are not credentials and would mask unrelated text.
        if len(value) >= 8 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_overrides(overrides: list[str] | Any) -> list[str]:
    """Hydra overrides with the values of secret-looking keys masked whole (a sweep's `key=a,b` included)."""
    out = []
    for override in map(str, overrides):
        key, sep, value = override.partition("=")
        out.append(f"{key}={REDACTED}" if sep and value and _SECRET_KEY.search(key) else redact_text(override))
    return out


def _redacting_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        shown = redact_text(message)
        if shown != message:
            record.msg, record.args = shown, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def redact_log_records() -> None:
    """From now on, every log record's message is redacted (Hydra logs each job's overrides, MLflow its URLs)."""
    make = logging.getLogRecordFactory()
    if not getattr(make, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(make))


def quiet_credentials(uri: str) -> None:
    """Stop MLflow printing run links when `uri` carries a password: it prints the URI in clear on stdout."""
    if _URL_PASSWORD.search(uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def redact(values: dict[str, Any]) -> dict[str, str]:
    """Params or tags as strings, with secret-looking keys' values and embedded credentials masked."""
    return {
        key: REDACTED if _SECRET_KEY.search(key) and value not in (None, "") else redact_text(str(value))
        for key, value in values.items()
    }


def redact_config(config: Any, key: str = "") -> Any:
    """A resolved config (nested dicts and lists) with secrets masked as in `redact`, e.g. for `config.yaml`."""
    if isinstance(config, dict):
        return {k: redact_config(v, str(k)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact_config(v) for v in config]
    if _SECRET_KEY.search(key) and config not in (None, ""):
        return REDACTED
    return redact_text(config) if isinstance(config, str) else config


@contextmanager
def mlflow_run(
    tracking_uri: str, experiment: str, run_name: str | None, params: dict[str, Any], tags: dict[str, str]
) -> Iterator[Any]:
    """An active MLflow run, once the store answers; an error ends it FAILED, Ctrl-C or SIGTERM KILLED."""
    check_tracking_uri(tracking_uri)
    quiet_credentials(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    set_experiment(experiment)
    run = mlflow.start_run(run_name=run_name and redact_text(run_name), tags=redact(tags))
    try:
        with _sigterm_as_interrupt():
            mlflow.log_params({k: v[:6000] for k, v in redact(params).items()})
            yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def set_experiment(name: str) -> Any:
    """`mlflow.set_experiment`, tolerating a parallel job creating the same experiment first."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.set_experiment(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.set_experiment(name)  # a parallel job created it between our lookup and create


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a scheduler's time limit) arrived during a run."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into an exception so the run is closed; left alone where someone else (e.g. submitit) handles it."""
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupt_on_signals(on_signal: Callable[[str], None]) -> None:
    """From now on, SIGINT and SIGTERM call `on_signal(name)`, then raise KeyboardInterrupt (`Terminated` for SIGTERM).

    Each is left alone where someone else handles it (e.g. submitit), or ignores it (a shell's background job).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        on_signal(signal.Signals(signum).name)
        raise (Terminated if signum == signal.SIGTERM else KeyboardInterrupt)(f"signal {signum}")

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


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
        from stance.cross_encoder import attach_weights

        # pyfunc loading already runs this model's own code file, so refusing its pickle would protect nothing;
        # `stance.load_model` is the loader that runs no code from the model.
        pipeline = load_pipeline(context.artifacts["pipeline"], allow_pickle=True)
        self.pipeline = attach_weights(pipeline, weight_folders(context.artifacts))
        self.task = dict(context.model_config or {})

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """What the task means: a label and class probabilities, a claim score, or a set of topics."""
        from stance.predict import forget_vectors

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
    from stance.cross_encoder import fine_tuned_parts
    from stance.wheel import build_wheel

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
    from stance.cross_encoder import attach_weights

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
# and 50 MB per 100k terms), so scikit-learn's vectorizers are then stored with a compact one (stance.vocabulary).
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

    from stance.vocabulary import COMPACT

    model = copy.deepcopy(model)
    for part in _estimators(model):
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
        return joblib.load(path)
    skops_io = _import_skops()
    types = skops_io.get_untrusted_types(file=path)
    untrusted = sorted(t for t in types if not _trusted_class(t))
    if untrusted:
        raise UntrustedModelError(
            f"{path} holds types that are not classes of {', '.join(TRUSTED_MODULES)}: {', '.join(untrusted)}. Not "
            "loading it; if you trust where it came from, load it with skops.io.load(path, trusted=[...those types])."
        )
    return skops_io.load(path, trusted=types)


def _trusted_class(name: str) -> bool:
    """Whether `module.Name` is a class defined in one of `TRUSTED_MODULES` (skops instantiates, even calls, it).

    Being in a trusted module is not enough: `stance.train.instantiate` is Hydra's function imported there, and a
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


def _estimators(model: Any) -> Iterator[Any]:
    """`model` and every estimator nested in it (in attributes, lists, tuples and dicts), each once."""
    from sklearn.base import BaseEstimator

    seen, todo = set(), [model]
    while todo:
        part = todo.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, dict):
            todo.extend(part.values())
        elif isinstance(part, list | tuple):
            todo.extend(part)
        elif isinstance(part, BaseEstimator):
            yield part
            todo.extend(value for key, value in vars(part).items() if key != "vocabulary_")  # not its terms


def vocabulary_size(model: Any, plain_only: bool = False) -> int:
    """Terms in all fitted n-gram vocabularies (`vocabulary_`) of `model` and the estimators nested in it.

    plain_only: count only vocabularies stored as dicts (not those of `stance.vocabulary`'s compact vectorizers).
    """
    from stance.vocabulary import COMPACT

    compact = tuple(COMPACT.values())
    return sum(
        len(part.vocabulary_)
        for part in _estimators(model)
        if isinstance(getattr(part, "vocabulary_", None), dict) and not (plain_only and isinstance(part, compact))
    )


def log_result(result: Any, cfg: Any, peak_rss_mb: float) -> None:
    """Log metrics, timings, the dataset, the resolved config, tables, figures, a description and the model."""
    from omegaconf import OmegaConf

    from stance.cross_encoder import fine_tuned_parts
    from stance.model import embedding_models, requirements

    mlflow.log_metrics(result.evaluation.metrics)
    mlflow.log_metrics({f"time/{k}_seconds": v for k, v in result.seconds.items()} | {"peak_rss_mb": peak_rss_mb})
    tuned = fine_tuned_parts(result.model)
    if tuned:  # a per-target model fine-tunes once per target: total time, and how many came from the cache
        mlflow.log_metrics(
            {
                "time/finetune_seconds": sum(p.fit_seconds_ for p in tuned),
                "finetune/models": len(tuned),
                "finetune/cached": sum(bool(p.fit_cached_) for p in tuned),
            }
        )
    data_name = str(cfg.data.get("_target_", "data")).rsplit(".", 1)[-1]
    digest = log_dataset(result.frames, data_name, source=str(cfg.data.get("root") or "$STANCE_DATA"))
    mlflow.set_tag("data_digest", digest)
    mlflow.log_metrics({f"data/rows/{split}": len(frame) for split, frame in result.frames.items()})
    mlflow.log_metrics({f"data/dropped/{reason}": n for reason, n in result.report.dropped.items()})
    mlflow.log_dict({"warnings": result.report.warnings, "dropped": result.report.dropped}, "data_report.json")
    resolved = redact_config(OmegaConf.to_container(cfg, resolve=True))  # resolved env values may hold secrets
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")
    _log_tables(result.evaluation)
    for name, figure in _figures(result.evaluation, result.task, data_name).items():
        mlflow.log_figure(figure, name)
        figure.clf()
    mlflow.set_tag("mlflow.note.content", describe_run(result, cfg, data_name))
    if cfg.mlflow.log_model:
        train = result.frames["train"]
        # Context columns travel with the example, so the pyfunc passes them on (as optional inputs).
        context = [c for c in ("group", *getattr(result.task, "keep_columns", ())) if c in train.columns]
        example = train[["text", "target", *context]].head(3).reset_index(drop=True)
        metadata = {"embedding_models": embedding_models(result.model), "stance_version": _version()}
        uri = log_model(result.model, example, metadata, requirements(result.model), result.task.describe())
        if cfg.mlflow.get("register"):
            register(uri, cfg.mlflow.register, cfg.mlflow.get("alias") or "latest")


def _log_tables(evaluation: Any) -> None:
    """Per-target and per-class tables, test predictions, and the most confident test errors."""
    for name, table in (("per_target", evaluation.per_target), ("per_class", evaluation.per_class)):
        if len(table):
            mlflow.log_table(table, f"{name}.json")
            mlflow.log_text(table.to_csv(index=False), f"{name}.csv")
    test = evaluation.predictions.get("test")
    if test is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions_test.parquet"
        test.assign(label=test["label"].astype(str), predicted=test["predicted"].astype(str)).to_parquet(path)
        mlflow.log_artifact(str(path))
    if "confidence" in test:
        errors = test[test["label"].astype(str) != test["predicted"].astype(str)]
        shown = errors.sort_values("confidence", ascending=False).head(200)
        mlflow.log_table(shown[[c for c in ERROR_COLUMNS if c in shown]], "misclassified_test.json")


ERROR_COLUMNS = ["confidence", "label", "predicted", "target", "text", "id", "group"]


def _figures(evaluation: Any, task: Any, data_name: str) -> dict[str, Any]:
    """The run's figures by artifact name, as the task calls for."""
    from stance import figures

    out = {}
    for split, predictions in evaluation.predictions.items():
        if not task.multilabel:
            out[f"confusion_matrix_{split}.png"] = figures.confusion_figure(predictions, f"{data_name} {split}")
    test = evaluation.predictions.get("test")
    per_class = evaluation.per_class
    if len(per_class) and "test" in set(per_class["split"]):
        f1 = per_class[per_class["split"] == "test"].set_index("class")["f1"].sort_values()
        out["f1_per_class_test.png"] = figures.bar_figure(f1, "F1", f"{data_name} test: F1 per class")
    per_target = evaluation.per_target
    if "f_avg" in per_target and 1 < per_target["target"].nunique() <= 30:
        values = per_target[per_target["split"] == "test"].set_index("target")["f_avg"].sort_values()
        out["f_avg_per_target_test.png"] = figures.bar_figure(values, "F_avg", f"{data_name} test: F_avg per target")
    if test is not None and "score" in test:
        out["pr_curve_test.png"] = figures.pr_figure(test, f"{data_name} test: check-worthy claims")
    elif test is not None and "confidence" in test:
        out["calibration_test.png"] = figures.calibration_figure(test, f"{data_name} test: calibration")
    return out


def describe_run(result: Any, cfg: Any, data_name: str) -> str:
    """A short note for the MLflow run page: what was trained on what, and how it scored."""
    features = str(cfg.features.get("_target_", "")).rsplit(".", 1)[-1]
    classifier = str(cfg.classifier.get("_target_", "")).rsplit(".", 1)[-1]
    mode = "one model per target" if cfg.per_target and result.task.name == "stance" else "one joint model"
    headline = ", ".join(
        f"{k} {v:.3f}" for k, v in result.evaluation.metrics.items() if k.startswith("test/") and k.count("/") == 1
        and "_ci_" not in k
    )  # fmt: skip
    return (
        f"**{result.task.name}** on `{data_name}` ({', '.join(f'{k} {len(v)}' for k, v in result.frames.items())} "
        f"rows): {features} features + {classifier}, {mode}. Test: {headline}."
    )


def register(model_uri: str, name: str, alias: str) -> None:
    """Register a logged model under `name` and point `alias` at the new version (`models:/name@alias`)."""
    version = mlflow.register_model(model_uri, name)
    mlflow.tracking.MlflowClient().set_registered_model_alias(name, alias, version.version)


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("stance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
