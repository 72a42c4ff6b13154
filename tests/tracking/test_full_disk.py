"""A full disk under the MLflow store or its artifacts: one message (the folder, its free space, the fix), the run
ended FAILED when the store can still record it and said to be RUNNING when it cannot, and the same command working
once space is freed (`stance.tracking.runs.mlflow_run`, `stance.tracking.server`). Real tmpfs file systems, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from stance.tracking.runs import mlflow_run
from stance.tracking.server import StoreFullError, check_tracking_uri
from tests.helpers import NEW, runs

# TF-IDF features: no encoder to load, and a logged model of ~20 MB, far more than the run's other artifacts (~0.2 MB).
TFIDF = ["data.limit=300", "features=tfidf", "per_target=false", "bootstrap=0"]


def fill(disk: Path) -> Path:
    """A ballast file taking every free byte of `disk`'s file system."""
    ballast = disk / "ballast"
    handle = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):  # large writes first, then what is left of the last page
            with suppress(OSError):
                while True:
                    os.write(handle, b"\0" * size)
    finally:
        os.close(handle)
    assert os.statvfs(disk).f_bavail == 0
    return ballast


def train(store: str, workdir: Path, *overrides: str) -> tuple[int, list[str], str]:
    """`python -m stance.train` with the TF-IDF slice and its model logged: exit code, its `error:` lines, stderr."""
    command = [sys.executable, "-m", "stance.train", *TFIDF, f"mlflow.tracking_uri={store}",
               f"hydra.run.dir={workdir}/outputs", *overrides]  # fmt: skip
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr


def quality(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith(("test/", "validation/"))}


@pytest.mark.slow
def test_a_full_artifact_disk_ends_the_run_failed_in_one_message_and_the_same_command_finishes_once_space_is_freed(
    tmp_path, small_disk
):
    (tmp_path / "roomy").mkdir()
    roomy_store = f"sqlite:///{tmp_path}/roomy/mlflow.db"
    code, errors, stderr = train(roomy_store, tmp_path / "roomy")
    assert code == 0 and not errors, stderr[-3000:]
    [roomy] = runs(roomy_store)

    disk = small_disk("store", 4096)  # the store (~1 MB) and the run's figures fit, its 20 MB model does not
    store = f"sqlite:///{disk}/mlflow.db"
    code, errors, stderr = train(store, tmp_path)
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    [run] = runs(store)
    [error] = errors
    where = f"in the MLflow store {store} and its artifacts {disk}/mlruns/stance"
    assert error.startswith(
        f"error: No space left for MLflow run {run.info.run_id} {where} (No space left on device). "
    )
    assert f" MB free in {disk}. " in error and "The run is marked FAILED. " in error
    assert "Free space there, or set mlflow.tracking_uri=sqlite:///" in error and "run the same command again" in error
    assert run.info.status == "FAILED"
    assert quality(run) == pytest.approx(quality(roomy), abs=1e-12)  # everything before the model was logged
    [model] = MlflowClient(store).search_logged_models(experiment_ids=[run.info.experiment_id])
    assert model.status == "FAILED"  # MLflow could not mark it, the store being full when the copy failed
    assert f"The cut-short copy {disk}/mlruns/stance/models/{model.model_id}/" in error
    assert not list((disk / "mlruns").rglob("pipeline.skops"))  # removed: its space let the store record FAILED

    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
    code, errors, stderr = train(store, tmp_path)
    assert code == 0 and not errors, stderr[-3000:]
    statuses = {r.info.run_id: r.info.status for r in runs(store)}
    [rerun] = [r for r in runs(store) if r.info.run_id != run.info.run_id]
    assert statuses == {run.info.run_id: "FAILED", rerun.info.run_id: "FINISHED"}
    assert quality(rerun) == pytest.approx(quality(roomy), abs=1e-12)
    predicted = []
    for uri, run_id in ((store, rerun.info.run_id), (roomy_store, roomy.info.run_id)):
        mlflow.set_tracking_uri(uri)
        predicted.append(list(mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(NEW)))
    assert predicted[0] == predicted[1]  # the same model as on a roomy disk


@pytest.mark.slow
def test_a_store_full_before_the_run_starts_creates_no_run_and_the_same_command_runs_once_space_is_freed(
    tmp_path, small_disk
):
    disk = small_disk("store", 2048)
    store = f"sqlite:///{disk}/mlflow.db"
    check_tracking_uri(store)  # an existing store, then the disk fills up (another program, another user)
    ballast = fill(disk)
    code, errors, stderr = train(store, tmp_path, "mlflow.log_model=false")
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert errors[0].startswith(f"error: No space left to start a run in the MLflow store {store} (database or disk "
                                f"is full). 0.0 MB free in {disk}. No run was created. Free space there, or set "
                                "mlflow.tracking_uri=")  # fmt: skip
    assert runs(store) == []

    ballast.unlink()  # space freed
    code, errors, stderr = train(store, tmp_path, "mlflow.log_model=false")
    assert code == 0 and not errors, stderr[-3000:]
    assert [r.info.status for r in runs(store)] == ["FINISHED"]


def test_a_store_too_full_to_record_the_end_says_so_and_reports_the_error_that_ended_the_run(small_disk):
    disk = small_disk("store", 2048)
    store = f"sqlite:///{disk}/mlflow.db"
    with pytest.raises(StoreFullError) as raised:
        with mlflow_run(store, "stance", "full", {"a": "1"}, {}) as run:
            ballast = fill(disk)  # mid-run; nothing of the run's own to remove
            mlflow.log_metric("m", 1.0)
    message = str(raised.value)
    where = f"in the MLflow store {store} and its artifacts {disk}/mlruns/stance"
    assert message.startswith(f"No space left for MLflow run {run.info.run_id} {where} (database or disk is full). ")
    assert f" 0.0 MB free in {disk}. " in message
    assert "Its status could not be recorded either (database or disk is full): it shows RUNNING. " in message
    assert mlflow.active_run() is None  # the process can start another run

    ballast.unlink()
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "RUNNING"  # as the message said
    with mlflow_run(store, "stance", "next", {}, {}) as run:
        mlflow.log_metric("m", 1.0)
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "FINISHED"


def test_a_store_created_on_a_full_disk_is_removed_and_the_same_uri_works_once_space_is_freed(small_disk):
    disk = small_disk("store", 256)  # MLflow's empty schema takes ~1 MB
    store = f"sqlite:///{disk}/mlflow.db"
    with pytest.raises(StoreFullError) as raised:
        check_tracking_uri(store)
    assert str(raised.value).startswith(f"No space left to open the MLflow store {store} (database or disk is full). ")
    assert f" MB free in {disk}. Free space there, or set mlflow.tracking_uri=" in str(raised.value)
    assert sorted(p.name for p in disk.iterdir()) == ["mlflow.db.lock"]  # no half-migrated store left behind

    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)  # space freed
    check_tracking_uri(store)  # before the fix: "table _alembic_tmp_trace_tags already exists"
    assert MlflowClient(store).search_experiments()
