"""Team tracking: a real `mlflow server` on loopback (SQLite and PostgreSQL stores), bad URIs failing fast, and a
store locked by another writer retried rather than failed (`stance.tracking.server`)."""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from stance.experiment import run_experiment
from stance.tracking.server import TrackingError, check_tracking_uri, retry_busy
from tests.helpers import NEW, start_server, stop

POSTGRES_ENV = "STANCE_TEST_POSTGRES"


@pytest.fixture
def postgres_store() -> Iterator[str]:
    """A fresh database on the PostgreSQL that `.ci/postgres` started, dropped afterwards."""
    admin_uri = os.environ.get(POSTGRES_ENV)
    if not admin_uri:
        reason = f"{POSTGRES_ENV} is not set; start PostgreSQL with `export {POSTGRES_ENV}=$(bash .ci/postgres)`"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL server test: {reason}")
        pytest.skip(reason)
    import sqlalchemy

    name = f"stance_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield admin_uri.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path) -> Iterator[str]:
    """The URL of a running `mlflow server` with the given backend store and a local artifact destination."""
    store = (
        f"sqlite:///{tmp_path}/server.db" if request.param == "sqlite" else request.getfixturevalue("postgres_store")
    )
    process, url = start_server(store, tmp_path / "artifacts", tmp_path / "server.log")
    try:
        yield url
    finally:
        stop(process)


@pytest.mark.slow
def test_experiment_on_server_reloads_in_fresh_process(server, make_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in a local ./mlflow.db or ./mlruns
    overrides = ["data.limit=200", "per_target=false", "bootstrap=0", "features.show_progress=false"]
    cfg = make_cfg(f"mlflow.tracking_uri={server}", *overrides)
    result = run_experiment(cfg, overrides)
    code = (
        "import json, sys, mlflow, pandas as pd, stance; "
        "mlflow.set_tracking_uri(sys.argv[1]); "
        "model = stance.load_model(f'runs:/{sys.argv[2]}/model'); "
        "print(json.dumps(list(model.predict(pd.DataFrame(json.loads(sys.argv[3]))))))"
    )
    args = [server, result.run_id, json.dumps(NEW.to_dict(orient="list"))]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == list(result.model.predict(NEW))
    run = requests.get(f"{server}/api/2.0/mlflow/runs/get", params={"run_id": result.run_id}, timeout=10).json()
    assert run["run"]["info"]["status"] == "FINISHED"
    assert not any(Path(tmp_path).glob("mlflow.db")) and not (tmp_path / "mlruns").exists()


class NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that is not MLflow: every path is 404."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_web_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("http://127.0.0.1:1", "unreachable"),
        ("other web server", "not an MLflow tracking server"),
        ("bogus://nowhere", "cannot use tracking URI"),
        ("postgresql://nobody:hunter2pass@127.0.0.1:1/none", "Cannot connect to the MLflow database"),
    ],
)
def test_bad_tracking_uri_fails_before_training(uri, expected, make_cfg, tmp_path, monkeypatch, other_web_server):
    uri = other_web_server if uri == "other web server" else uri
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STANCE_CACHE", str(tmp_path / "cache"))
    cfg = make_cfg(f"mlflow.tracking_uri={uri}", "data.limit=50", "features.show_progress=false")
    start = time.monotonic()
    with pytest.raises(TrackingError, match=expected) as err:
        run_experiment(cfg)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "mlflow.tracking_uri" in message and "hunter2pass" not in message
    assert uri.split("@")[-1] in message
    # Nothing started: no local store, no run, and no embedding was computed.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_store_locked_past_mlflows_busy_timeout_is_retried_not_failed(tmp_path, caplog):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    check_tracking_uri(store)
    client = MlflowClient(tracking_uri=store)
    run = client.create_run(client.create_experiment("locked"))
    locker = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # another process mid-write, for longer than MLflow's 20 s busy timeout
    release = threading.Timer(22, locker.execute, ["COMMIT"])
    release.start()
    try:
        retry_busy(lambda: client.set_terminated(run.info.run_id, "FINISHED"), pause=0.5)
    finally:
        release.join()
        locker.close()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert "MLflow store busy ((sqlite3.OperationalError) database is locked); retrying in 0.5 s" in caplog.text
