"""Sweeps: on Hydra's launchers (joblib processes, submitit subprocesses) and the ready-made launcher configs; a crashed
sweep's parent run; two sweeps at once on one embedding cache and one store (`stance.tracking.sweep`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import compose
from tests.helpers import cache_entries, runs, sweep_results, train_command

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
        ("slurm_requeue", {"max_num_timeout": 20, "signal_delay_s": 300, "gpus_per_node": 0}),
        ("slurm_ddp", {"max_num_timeout": 20, "gpus_per_node": 4, "tasks_per_node": 4}),
    ],
)
def test_launcher_presets_compose(preset, expected):
    cfg = compose(f"hydra/launcher={preset}", hydra=True)
    assert expected.items() <= dict(cfg.hydra.launcher).items()


def test_a_crashed_sweep_ends_its_parent_failed(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    command = train_command(store, tmp_path, "classifier=logreg,no_such_classifier", multirun=True)
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "no_such_classifier" in done.stderr
    [parent] = runs(store)
    assert parent.info.status == "FAILED"
    assert sweep_results(store, parent.info.run_id).empty  # no job ran: an empty table, logged all the same


@pytest.mark.slow
def test_two_sweeps_at_once_on_one_cache_and_store_lose_nothing(tmp_path):
    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame

    store, cache = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "cache"
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    sweeps = [
        subprocess.Popen(
            train_command(store, tmp_path / f"sweep{i}", "classifier=logreg,svm", "data.limit=200", multirun=True),
            cwd=tmp_path,
            env=env,
            stdout=(tmp_path / f"sweep{i}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    for i, sweep in enumerate(sweeps):
        assert sweep.wait(timeout=1500) == 0, (tmp_path / f"sweep{i}.log").read_text()[-3000:]

    logged = runs(store)
    parents = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4
    logs = "\n".join((tmp_path / f"sweep{i}.log").read_text()[-6000:] for i in range(2))
    statuses = [(r.info.run_name, r.info.status) for r in logged]
    assert [r.info.status for r in logged] == ["FINISHED"] * 6, f"{statuses}\n{logs}"
    for parent in parents:
        mine = [r for r in children if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == 2 and all("test/f_avg" in r.data.metrics for r in mine)
        assert "best/validation/f_avg" in parent.data.metrics
    by_classifier: dict[str, list[float]] = {}
    for run in children:
        by_classifier.setdefault(run.data.params["classifier._target_"], []).append(run.data.metrics["test/f_avg"])
    assert all(len(set(scores)) == 1 for scores in by_classifier.values())  # same config, same result

    frames = [to_frame(split) for split in semeval2016_task6(limit=200).values()]
    texts = {t for frame in frames for column in ("text", "target") for t in frame[column]}
    assert cache_entries(cache) == len(texts)


# What a new user saw on the console (issue 29): library bars and chatter, no row counts, no result at the end.
NOISE = ("Downloading artifacts", "Loading weights", "Embedded ", "Creating initial MLflow database tables")


@pytest.mark.slow
def test_a_sweep_prints_rows_per_split_and_ends_with_the_best_job_and_its_table_without_library_noise(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [sys.executable, "-m", "stance.train", "-m", "classifier=logreg,svm", "data.limit=60", "per_target=false"]
    cmd += ["bootstrap=0", f"mlflow.tracking_uri={store}", f"hydra.sweep.dir={tmp_path}/multirun"]  # models logged
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert console.count("rows per split: train 60, validation 60, test 60") == 2  # one line per job, at its start
    assert [line for line in console.splitlines() if any(noise in line for noise in NOISE)] == []
    [parent] = [r for r in runs(store) if "mlflow.parentRunId" not in r.data.tags]
    table = sweep_results(store, parent.info.run_id)
    best, job = table.iloc[0], table["overrides"].iloc[0].split()[0]  # the override that tells the jobs apart
    lines = done.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("best job: ")))
    assert lines[start] == f"best job: {job}  validation/f_avg={best['validation/f_avg']:.4f}  (run {best['run_id']})"
    assert lines[start + 1].startswith("sweep FINISHED, 2 job(s), by validation/f_avg; all with data.limit=60 ")
    assert lines[start + 2].split() == ["job", "status", "validation/f_avg", "test/f_avg", "run_id"]
    assert set(lines[start + 3]) == {"-", " "}
    assert [line.split()[0] for line in lines[start + 4 : start + 6]] == [o.split()[0] for o in table["overrides"]]
    assert f"{table['test/f_avg'].iloc[1]:.4f}" in lines[start + 5]
