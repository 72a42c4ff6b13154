"""End to end on a slice of SemEval with the real MiniLM: train, log to MLflow, reload, predict identically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import stance
from stance.experiment import run_experiment
from stance.train import report
from tests.conftest import DEFAULT_RUN, compose
from tests.helpers import NEW

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged(default_run):
    """The default experiment on a 300-row slice (the session's `default_run`): its result and tracking URI."""
    return default_run.result, default_run.uri


def test_run_has_metrics_and_artifacts(logged):
    result, uri = logged
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for split in ("validation", "test"):
        for name in ("f_avg", "macro_f1", "accuracy", "f_avg/Atheism"):
            assert f"{split}/{name}" in metrics
    assert metrics["test/f_avg"] == pytest.approx(result.evaluation.metrics["test/f_avg"])
    assert 0.2 < metrics["test/f_avg"] <= 1.0
    assert run.data.params["classifier._target_"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.params["features.model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert {"overrides", "git_commit", "data_digest"} <= set(run.data.tags)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "per_target.json", "per_target.csv", "confusion_matrix_test.png"} <= artifacts
    inputs = [d.dataset.name for d in run.inputs.dataset_inputs]
    assert "semeval2016_task6/train" in inputs
    # Beside the SQLite file, not under whichever directory the run started in.
    store = Path(uri.removeprefix("sqlite:///"))
    assert run.info.artifact_uri == str(store.parent / "mlruns" / "stance" / result.run_id / "artifacts")
    # The model is named after its experiment and run, and is among the run's artifacts too (runs:/<id>/model).
    found = f"source_run_id = '{run.info.run_id}'"
    [model] = client.search_logged_models([run.info.experiment_id], filter_string=found)
    assert model.name == "stance-data_limit=300,features_show_progress=false,mlflow_register=deployed"
    assert (Path(run.info.artifact_uri) / "model" / "MLmodel").is_file()


def test_logged_model_predicts_like_in_process_and_refers_to_encoder_by_name(logged):
    result, uri = logged
    mlflow.set_tracking_uri(uri)
    loaded = stance.load_model(f"runs:/{result.run_id}/model")
    test = result.frames["test"]
    assert (loaded.predict(test) == result.model.predict(test)).all()
    np.testing.assert_allclose(loaded.predict_proba(test), result.model.predict_proba(test), rtol=1e-6)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    out = pyfunc.predict(NEW)
    assert list(out.columns) == ["label", "proba_AGAINST", "proba_FAVOR", "proba_NONE"]
    assert out["label"].tolist() == list(result.model.predict(NEW))
    assert pyfunc.metadata.metadata["embedding_models"][0].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    local = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/model")
    weights = list(Path(local).rglob("*.safetensors"))
    assert not weights, "the encoder weights must not be copied into the run"


def test_end_of_run_names_the_model_its_store_and_its_runs_in_the_ui(default_run):
    store = f"sqlite:///{default_run.store}/mlflow.db"
    experiment = default_run.result.experiment_id
    printed = report(default_run.result, compose(*DEFAULT_RUN, store=default_run.store)).splitlines()
    assert printed[0].startswith("validation/macro_f1=") and "test/f_avg=" in printed[0]
    assert printed[1:] == [
        f"MLflow run id: {default_run.run_id}  (tracking URI: {store})",
        f"Model: runs:/{default_run.run_id}/model  (registered: models:/deployed@champion)",
        f'Load it from any folder: import stance; model = stance.load_model("runs:/{default_run.run_id}/model", '
        f'tracking_uri="{store}")',
        f"Its runs in the MLflow UI: mlflow ui --backend-store-uri {store}, then "
        f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning",
    ]


def test_fresh_process_loads_and_predicts(logged):
    result, uri = logged
    code = (
        "import json, mlflow, pandas as pd, stance; "
        f"mlflow.set_tracking_uri({uri!r}); "
        f"m = stance.load_model('runs:/{result.run_id}/model'); "
        f"print(json.dumps(list(m.predict(pd.DataFrame({NEW.to_dict(orient='list')!r})))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == list(result.model.predict(NEW))


def test_sweep_logs_one_run_per_job_under_a_parent_and_survives_a_failed_job(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [
        sys.executable, "-m", "stance.train", "-m", "classifier=logreg,svm", "features.target_mode=concat,bogus",
        "data.limit=200", "per_target=false", f"mlflow.tracking_uri={store}", f"hydra.sweep.dir={tmp_path}/multirun",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path)
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("stance").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    jobs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    finished = sorted(r.data.tags["overrides"].split()[0] for r in jobs if r.info.status == "FINISHED")
    assert finished == ["classifier=logreg", "classifier=svm"]
    assert sum(r.info.status == "FAILED" for r in jobs) == 2, "a bad job is FAILED and the sweep goes on"
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=parents[0].info.run_id, artifact_path="sweep_results.csv", tracking_uri=store
        )
    )
    assert len(table) == 4 and table["validation/f_avg"].iloc[0] == table["validation/f_avg"].max()


def test_researchers_multi_target_csv_trains_with_data_files(make_cfg, data_root):
    """The multi-target election CSV (CR line endings, two targets per row) as a user's own file."""
    cfg = make_cfg(
        "data=files",
        f"data.paths={data_root}/multitarget_stance_election2016/multi_target_stance.csv",
        "data.columns={text: Tweet}",
        "data.targets={Target 1: Stance 1, Target 2: Stance 2}",
        "data.split_column=Test/Train/Dev",
        "data.split_map={Train: train, Dev: validation, Test: test}",
        "data.limit=300",
        "features.show_progress=false",
    )
    result = run_experiment(cfg, ["data=files"])
    assert set(result.frames["test"]["target"]) == {"Hilary Clinton", "Donald Trump", "Bernie Sanders", "Ted Cruz"}
    assert 0.0 < result.evaluation.metrics["test/f_avg"] <= 1.0
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    assert client.get_run(result.run_id).data.metrics["data/rows/test"] == 300
