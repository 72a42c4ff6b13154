"""Secrets: no token or password from the config or the tracking URI reaches a run's params, tags, name, artefacts,
saved files or console (`stance.tracking.redact`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from stance.experiment import run_experiment
from stance.tracking import redact
from tests.helpers import start_server, stop

SECRETS = {"MLFLOW_TRACKING_TOKEN": "tok-7f3a9c1e5b", "AWS_SECRET_ACCESS_KEY": "aws-2b8d4f6a0c9e"}


def test_no_secret_reaches_params_tags_or_run_name(make_cfg, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    overrides = [
        "+credentials.api_token=${oc.env:MLFLOW_TRACKING_TOKEN}",
        "+storage.url=s3://me:${oc.env:AWS_SECRET_ACCESS_KEY}@bucket/stance",
        "+notes.comment=${oc.env:AWS_SECRET_ACCESS_KEY}",
        "+db.password=hunter2hunter2",
    ]
    cfg = make_cfg(
        "features=tfidf", "data.limit=80", "per_target=false", "bootstrap=0", "mlflow.log_model=false", *overrides
    )
    result = run_experiment(cfg, overrides)
    run = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri).get_run(result.run_id)
    logged = json.dumps([run.data.params, run.data.tags, run.info.run_name])
    for secret in [*SECRETS.values(), "hunter2hunter2"]:
        assert secret not in logged
    assert run.data.params["credentials.api_token"] == run.data.params["db.password"] == redact.REDACTED
    assert run.data.params["storage.url"] == "s3://me:***@bucket/stance"
    assert run.data.params["features._target_"] == "stance.features.encoders.tfidf"  # ordinary params stay readable
    from omegaconf import OmegaConf

    config = json.dumps(redact.redact_config(OmegaConf.to_container(cfg, resolve=True)))
    assert not any(secret in config for secret in [*SECRETS.values(), "hunter2hunter2"])


@pytest.mark.slow
def test_no_secret_in_any_run_tag_param_artefact_saved_file_or_console_line_of_a_sweep(tmp_path):
    """A sweep with a token override, tracking to a server through a URI that carries a password.

    The URI is a real, working one: MLflow's REST client (requests) sends a URL's user:password as HTTP basic auth,
    and an `mlflow server` without auth ignores it, as a server behind an authenticating proxy would not.
    """
    token, password = "tok-SECRET-5d1e9c7a", "pw-SECRET-8a2f7b3c"
    server, url = start_server(f"sqlite:///{tmp_path}/server.db", tmp_path / "artifacts", tmp_path / "server.log")
    store = url.replace("http://", f"http://stance:{password}@")
    command = [
        sys.executable, "-m", "stance.train", "-m", "classifier=logreg,svm", f"+extra.api_token={token}",
        "features=tfidf", "per_target=false", "bootstrap=0", "data.limit=100", f"mlflow.tracking_uri={store}",
        f"hydra.sweep.dir={tmp_path}/multirun",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(tracking_uri=store)
        logged = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert sorted(r.info.status for r in logged) == ["FINISHED"] * 3  # the parent and two jobs
        shown = [done.stdout, done.stderr]
        for run in logged:
            shown += [run.info.run_name, json.dumps(run.data.params), json.dumps(run.data.tags)]
            folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=store))
            shown += [path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()]
        jobs = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
        assert {r.data.params["extra.api_token"] for r in jobs} == {redact.REDACTED}
    finally:
        stop(server)
    # Everything the server stored (database and artefact files) and everything Hydra saved for the sweep.
    stored = [tmp_path / "server.db", *(tmp_path / "artifacts").rglob("*"), *(tmp_path / "multirun").rglob("*")]
    shown += [path.read_bytes().decode("utf-8", "replace") for path in stored if path.is_file()]
    assert (tmp_path / "multirun" / "multirun.yaml").is_file()
    # Each job's model, as a logged model and under its run's artifacts: all their files were searched too.
    assert sum(path.name == "MLmodel" for path in stored) == 4
    for secret in (token, password):
        leaks = [text[max(0, text.find(secret) - 200) : text.find(secret) + 50] for text in shown if secret in text]
        assert not leaks, f"{secret} leaked: {leaks[:3]}"
    assert f"stance:{redact.REDACTED}@127.0.0.1" in done.stdout  # the URI is shown, its password masked
