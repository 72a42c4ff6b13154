"""Tracking-store checks: fail fast on an unusable MLflow URI, and create experiments safely in parallel."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import mlflow

from stance.tracking.redact import redact_text

log = logging.getLogger(__name__)
T = TypeVar("T")


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
                f"(mlflow server --host HOST --port PORT ...; docs/scaling.md). {fix}."
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


def set_experiment(name: str) -> Any:
    """`mlflow.set_experiment`, tolerating a parallel job creating the same experiment first."""
    from mlflow.exceptions import MlflowException

    try:
        if (location := _artifacts_beside_store(name)) and mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=location)
        return mlflow.set_experiment(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.set_experiment(name)  # a parallel job created it between our lookup and create


def _artifacts_beside_store(experiment: str) -> str | None:
    """`<folder of the SQLite file>/mlruns/<experiment>` for a local SQLite store, else None (the store decides).

    MLflow's default is `./mlruns` under whichever directory the run started in, so a store shared by many
    directories (the default models' registry in the user cache) would point at artifacts that come and go with them.
    """
    uri = mlflow.get_tracking_uri()
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
    return str(folder / "mlruns" / re.sub(r"[^\w.-]+", "_", experiment))


def retry_busy(call: Callable[[], T], attempts: int = 6, pause: float = 1.0) -> T:
    """`call()`, tried again (after 1, 2, 4, ... s) while the store answers "temporarily unavailable".

    A SQLite store shared by parallel processes says so when its lock stays taken past the busy timeout, which
    happens on a loaded machine; the operations retried here (ending runs, logging a sweep's table) are idempotent.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts - 1):
        try:
            return call()
        except MlflowException as err:
            if err.error_code != "TEMPORARILY_UNAVAILABLE":
                raise
            log.warning("MLflow store busy (%s); retrying in %.1f s", _first_line(err), pause * 2**attempt)
            time.sleep(pause * 2**attempt)
    return call()
