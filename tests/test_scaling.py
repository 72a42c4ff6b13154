"""Sweeps on Hydra's launchers (joblib processes, submitit subprocesses) and the ready-made launcher configs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from tests.conftest import CONF

SLICE = ["data.limit=200", "per_target=false", "bootstrap=0", "features.show_progress=false", "mlflow.log_model=false"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One embedding cache for this module's sweeps: the first fills it from parallel jobs, the next reuse it."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_on_launcher_logs_one_child_run_per_job(launcher, cache, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [sys.executable, "-m", "stance.train", "-m", f"hydra/launcher={launcher}", "classifier=logreg,svm", *SLICE]
    cmd += [f"mlflow.tracking_uri={store}", f"hydra.sweep.dir={tmp_path}/multirun"]
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("stance").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["classifier._target_"].rsplit(".", 1)[-1] for r in children) == [
        "CalibratedClassifierCV",
        "LogisticRegression",
    ]
    assert all(r.info.status == "FINISHED" and "test/f_avg" in r.data.metrics for r in children)
    if launcher == "submitit_local":  # each job ran in its own process, logged by submitit
        assert len(list((tmp_path / "multirun" / ".submitit").rglob("*_log.out"))) == 2


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("parallel", {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}),
        ("slurm", {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}),
        ("slurm_gpu", {"gpus_per_node": 1, "timeout_min": 120}),
    ],
)
def test_launcher_presets_compose(preset, expected):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={preset}"], return_hydra_config=True)
    assert expected.items() <= dict(cfg.hydra.launcher).items()
