"""Helpers shared by test modules in several folders: paths, statements, training commands, MLflow stores, servers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# New statements toward SemEval targets, for models trained on a SemEval slice.
NEW = pd.DataFrame(
    {
        "text": ["God is a fairy tale for grown ups.", "We must act on climate now!", "Hillary for president"],
        "target": ["Atheism", "Climate Change is a Real Concern", "Hillary Clinton"],
    }
)


def options(group: str) -> list[str]:
    """The configs of a group in `conf/` (`classifier`, `features`, ...), by name."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# `python -m stance.train` in a subprocess: a quick slice, nothing logged but metrics.
SLICE = ["per_target=false", "bootstrap=0", "features.show_progress=false", "mlflow.log_model=false"]


def default_sigint() -> None:
    """A child's `preexec_fn`: SIGINT as from a terminal (a `nohup ... &` job, some CI runners, pass it on ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_command(store: str, workdir: Path, *overrides: str, multirun: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "stance.train", *(["-m"] if multirun else []), *SLICE, f"mlflow.tracking_uri={store}",
        f"hydra.run.dir={workdir}/outputs", f"hydra.sweep.dir={workdir}/multirun", *overrides,
    ]  # fmt: skip


def runs(store: str) -> list:
    """The runs of the `stance` experiment in a store (none if it has no such experiment yet)."""
    from mlflow.tracking import MlflowClient

    from stance.tracking.server import check_tracking_uri

    check_tracking_uri(store)  # creates the store under the same lock as the training processes polled here
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("stance")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def sweep_results(store: str, run_id: str) -> pd.DataFrame:
    """The `sweep_results.csv` table logged by a sweep's parent run."""
    import mlflow

    return pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="sweep_results.csv", tracking_uri=store)
    )


def cache_entries(folder: Path) -> int:
    """Entries in an embedding cache, after checking the SQLite file and every vector's length."""
    from stance.features.cache import DB_NAME

    with closing(sqlite3.connect(folder / DB_NAME)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM embeddings WHERE LENGTH(vector) != 4 * dim").fetchone() == (0,)
        return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]


def cached_so_far(folder: Path) -> int:
    """Entries a run has committed to the cache so far (0 while it is still creating the file or its table)."""
    from stance.features.cache import DB_NAME

    try:
        return cache_entries(folder) if (folder / DB_NAME).exists() else 0
    except sqlite3.OperationalError:
        return 0


def wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Poll `condition` until it holds, the process still running; else fail with its log (ended, or `timeout`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    # A fast machine can finish while a slow poll runs: then a signal sent next would prove nothing.
    ended = f"training ended by the time of {what}, before it could be interrupted"
    assert process.poll() is None, f"{ended}:\n{log.read_text()[-3000:]}"


def free_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store_uri: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on a free loopback port, once /health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", store_uri, "--artifacts-destination", str(artifacts)]
    server = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # the first start creates the schema: slow on a busy machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).text.strip() == "OK":
                return server, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"mlflow server did not answer /health within 180 s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop a server started by `start_server` (or `mlflow models serve`), killing it if it will not end."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
