"""Interrupts: Ctrl-C or `kill` during a run or a sweep ends its MLflow runs KILLED, keeps what the cache committed,
and a rerun succeeds from there (`stance.tracking.signals`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from tests.helpers import cache_entries, cached_so_far, default_sigint, runs, sweep_results, train_command, wait_for


@pytest.mark.slow
def test_interrupted_runs_end_killed_keep_the_cache_and_a_rerun_succeeds(tmp_path):
    store, cache = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "cache"
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    # Small batches: the cache gets vectors every 32 x 16 texts, long before the run ends. Progress is watched in the
    # cache alone: it is cheap to poll, and a run commits vectors only while its MLflow run is open.
    command = train_command(store, tmp_path, "data.limit=2000", "features.batch_size=16", "verbose=true")  # "Embedded"
    log = tmp_path / "train.log"

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=default_sigint
        )

    # Ctrl-C once the first chunk of vectors is committed, while later ones are being encoded.
    process = start()
    wait_for(lambda: cached_so_far(cache) > 0, "cached vector", process, log)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) != 0, log.read_text()[-3000:]
    assert [r.info.status for r in runs(store)] == ["KILLED"]
    cached = cache_entries(cache)
    assert cached > 0

    # `kill` (SIGTERM), e.g. from a scheduler, closes the run the same way; sent once the rerun adds vectors.
    process = start()
    wait_for(lambda: cached_so_far(cache) > cached, "more cached vectors", process, log)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) != 0, log.read_text()[-3000:]
    assert sorted(r.info.status for r in runs(store)) == ["KILLED", "KILLED"]

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(r.info.status for r in runs(store)) == ["FINISHED", "KILLED", "KILLED"]
    assert cache_entries(cache) >= cached
    reused = [int(n) for n in re.findall(r"Embedded \d+ texts with .*?: (\d+) from cache", done.stdout + done.stderr)]
    assert sum(reused) >= cached  # the rerun started from the vectors the interrupted runs had committed
    # verbose=true: each split's encoder lines come under a line naming the split and its rows
    output = done.stdout + done.stderr
    heads = re.findall(r"(Fitting on the train|Labelling the validation|Labelling the test) split \(\d+ rows\)", output)
    assert heads == ["Fitting on the train", "Labelling the validation", "Labelling the test"]
    assert output.index("Fitting on the train split") < output.index("Embedded ") < output.index("Labelling the")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_sweep_ends_parent_and_job_killed_with_the_partial_table(tmp_path, signum):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    cache = tmp_path / "cache"  # cold: the first job encodes its texts
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    # Enough texts, committed in small chunks, that the signal lands mid-encoding even on a fast CPU (a 300-row sweep
    # once ended, both jobs done, before a slow poll saw its first job).
    overrides = ["classifier=logreg,svm", "data.limit=2000", "features.batch_size=16"]
    command = train_command(store, tmp_path, *overrides, multirun=True)
    log = tmp_path / "sweep.log"
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=default_sigint
    )
    wait_for(lambda: cached_so_far(cache) > 0, "the first job's first cached vectors", process, log)
    process.send_signal(signum)
    assert process.wait(timeout=120) != 0, log.read_text()[-3000:]
    logged = runs(store)
    [parent] = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    [job] = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
    assert (parent.info.status, job.info.status) == ("KILLED", "KILLED"), log.read_text()[-3000:]
    table = sweep_results(store, parent.info.run_id)
    assert table[["run_id", "status"]].values.tolist() == [[job.info.run_id, "KILLED"]]
    assert "classifier=logreg" in table["overrides"][0].split()
