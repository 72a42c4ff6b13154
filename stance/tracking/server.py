"""Tracking-store checks: fail fast on an unusable MLflow URI, create experiments safely in parallel, and word a full
disk under the store or its artifacts as one message."""

from __future__ import annotations

import errno
import logging
import os
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


class StoreFullError(TrackingError):
    """The disk under the MLflow store or its artifacts is full; the message names the folder, free space and fix."""


FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# How SQLite (through SQLAlchemy and MLflow) and a tracking server word a full disk; both lose the errno.
_FULL_WORDS = ("database or disk is full", "No space left", "Disk quota exceeded")


# Database stores are probed with one connection: MLflow's own engine set-up retries for minutes.
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with a `TrackingError` unless `uri` is a usable MLflow store or a live MLflow tracking server."""
    import requests

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
            _open_store(uri)
    except Exception as err:  # MLflow raises several types for an unknown scheme or a bad store
        if full_disk(err):
            raise full_store_error(err, uri, "to open") from None
        schemes = getattr(err, "supported_uri_schemes", None)
        reason = f"unknown scheme (MLflow knows {', '.join(filter(None, schemes))})" if schemes else first_line(err)
        raise TrackingError(f"MLflow cannot use tracking URI {shown}: {reason}. {fix}.") from None


def _open_store(uri: str) -> None:
    """Resolve the store for the URI's scheme; a SQLite file this call created is removed again if that fails.

    A schema migration cut short (by a full disk) leaves a file that every later run refuses ("table _alembic_tmp_...
    already exists"); it holds no runs yet, so removing it lets the same command work once space is freed.
    """
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    new = path is not None and not path.exists()
    try:
        MlflowClient(tracking_uri=uri)  # creates a SQLite file and its tables
    except Exception:
        if new and path is not None:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            # MLflow keeps one engine per URI for the process: closed, or a retry would reuse the removed file
            engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
            if engine is not None:
                engine.dispose()
            for leftover in (path, *(path.with_name(path.name + end) for end in ("-journal", "-wal", "-shm"))):
                leftover.unlink(missing_ok=True)  # the journal too: a stale one would be replayed into a new file
        raise


def sqlite_path(uri: str) -> Path | None:
    """The file of a local SQLite store URI (relative to the working folder if the URI is), else None."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0] or "mlflow.db")


def absolute_uri(uri: str) -> str:
    """`uri` with a relative SQLite file made absolute (`sqlite:///mlflow.db` -> `sqlite:////work/mlflow.db`).

    A relative store means another store in every folder: the absolute form finds the same runs from anywhere.
    """
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{path.absolute()}" + (f"?{query}" if query else "")


def full_disk(err: BaseException) -> str | None:
    """What says the disk is full in `err` or the errors it was raised from or during ("No space left on device"...).

    An errno is preferred to words: SQLAlchemy and MLflow rewrap a full disk as "database or disk is full".
    """
    chain = list(error_chain(err))
    errnos = [link.errno for link in chain if isinstance(link, OSError) and link.errno in FULL_ERRNOS]
    if errnos:
        return os.strerror(errnos[0])
    return next((word for link in chain for word in _FULL_WORDS if word in str(link)), None)


def error_chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, then the errors it was raised from or while handling, each once."""
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def full_store_error(
    err: BaseException, uri: str, doing: str, artifacts: str | None = None, then: str = ""
) -> StoreFullError:
    """One line for a full disk under the store `uri` (and `artifacts`): what failed, the free space, the fix."""
    from mlflow.utils.uri import is_local_uri

    shown = redact_text(uri)
    store = sqlite_path(uri)
    folders = [p.expanduser().resolve().parent for p in [store] if p is not None]
    where = f"the MLflow store {shown}"
    if artifacts:
        where += f" and its artifacts {artifacts}"
        if is_local_uri(artifacts):
            from mlflow.utils.file_utils import local_file_uri_to_path

            folders.append(Path(local_file_uri_to_path(artifacts)))
    return StoreFullError(
        f"No space left {doing} {where} ({full_disk(err)}). {_free_space(folders)} {then}Free space there, or set "
        "mlflow.tracking_uri=sqlite:///<folder on a roomier disk>/mlflow.db (its artifacts go beside it), then run the "
        "same command again."
    )


def _free_space(folders: list[Path]) -> str:
    """'N MB free in <folder>.' for each folder, once per file system."""
    from stance.features.cache import free_space  # here: the features package is slow to import

    shown: dict[int, str] = {}
    for folder in folders:
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None:
            shown.setdefault(existing.stat().st_dev, free_space(existing))
    return " ".join(shown.values())


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


def first_line(err: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its type's name if it has none."""
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
        raise TrackingError(f"Cannot connect to the MLflow database {shown}: {first_line(err)}. {fix}.") from None


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
    store = sqlite_path(mlflow.get_tracking_uri())
    if store is None:
        return None
    return str(store.expanduser().resolve().parent / "mlruns" / re.sub(r"[^\w.-]+", "_", experiment))


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
            if err.error_code != "TEMPORARILY_UNAVAILABLE" or full_disk(err):  # MLflow calls a full disk that too
                raise
            log.warning("MLflow store busy (%s); retrying in %.1f s", first_line(err), pause * 2**attempt)
            time.sleep(pause * 2**attempt)
    return call()
