"""Resumable fine-tunes: a fit killed after a checkpoint resumes there and ends exactly as an uninterrupted fit; a
checkpoint of another configuration is named, never resumed; a full disk keeps the last good checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from stance.features import finetune

pytestmark = pytest.mark.slow

# A tiny fit of either kind, printing what it did and a few predictions (40 SemEval rows, short sequences).
_SCRIPT = """
import json, os, sys
import mlflow
from stance.config import load_data
from stance.data.schema import to_frame
kind, steps, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = {s: to_frame(d) for s, d in load_data("semeval2016_task6", "data.limit=40").items()}
train, test = data["train"], data["test"].head(10)
mlflow.set_tracking_uri(f"sqlite:///{os.environ['STANCE_CACHE']}/../mlflow.db")
mlflow.set_experiment("resume")
if kind == "cross-encoder":
    from stance.models.cross_encoder import CrossEncoderClassifier
    model = CrossEncoderClassifier(max_steps=steps, checkpoint_steps=every, max_length=48, batch_size=8,
                                   show_progress=False, seed=1)
    with mlflow.start_run() as run:
        model.fit(train, train["label"])
    print("run", run.info.run_id)
    out = model.predict_proba(test)
else:
    from stance.features.encoders import SentenceEmbedder
    from stance.features.finetune import Contrastive
    tuned = Contrastive(max_steps=steps, checkpoint_steps=every, batch_size=8, max_length=48, seed=1)
    model = SentenceEmbedder(finetune=tuned, show_progress=False).fit(train, train["label"])
    out = model.transform(test)
print(json.dumps({"resumed": model.resumed_from_step_, "steps": model.fit_steps_, "out": out.tolist()}))
"""


def _fit(cache: Path, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    command = [sys.executable, "-c", _SCRIPT, *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def _result(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _kill_after_checkpoint(cache: Path, step: int, *args: object) -> None:
    """Start a fit and `kill -9` it as soon as its checkpoint of `step` is in place."""
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    job = subprocess.Popen([sys.executable, "-c", _SCRIPT, *map(str, args)], env=env, stderr=subprocess.PIPE)
    checkpoints = finetune.store_dir(cache) / ".checkpoints"
    deadline = time.monotonic() + 600
    while not any(checkpoints.glob(f"*/checkpoint-{step}")):
        assert job.poll() is None, job.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)


def test_a_fit_killed_after_a_checkpoint_resumes_there_and_ends_as_an_uninterrupted_fit(tmp_path):
    fit = ("cross-encoder", 40, 7)  # 5 batches an epoch: checkpoint 14 is mid-epoch (data order matters)
    reference = _result(_fit(tmp_path / "roomy", *fit))
    assert reference["resumed"] == 0 and reference["steps"] == 40
    cache = tmp_path / "cache"
    _kill_after_checkpoint(cache, 14, *fit)

    other = _fit(cache, "cross-encoder", 3, 7)  # another configuration: told why, started afresh
    assert _result(other)["resumed"] == 0
    assert "Not resuming checkpoint cross-encoder-" in other.stderr
    assert "different configuration (max_steps 40 -> 3)" in other.stderr and "at step 0" in other.stderr

    done = _fit(cache, *fit)
    resumed = _result(done)
    step = resumed["resumed"]
    assert step >= 14 and f"at step {step} of 40" in done.stderr
    assert resumed["steps"] == 40
    # Measured: identical to 6 decimals (weights, optimizer, scheduler, RNG and data order all restored).
    np.testing.assert_allclose(resumed["out"], reference["out"], atol=1e-5)
    store = finetune.store_dir(cache)
    assert not any((store / ".checkpoints").iterdir())  # the weights are in place: the checkpoints are gone
    [key] = [p.name for p in finetune.store_dir(tmp_path / "roomy").iterdir() if not p.name.startswith(".")]
    assert finetune.cached_weights(key, cache) is not None  # the same content address as the uninterrupted fit's
    run_id = done.stdout.splitlines()[-2].split()[-1]
    tags = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).data.tags
    assert tags[f"finetune.resumed.{key}"] == f"step {step} of 40"


def test_a_full_disk_keeps_the_last_good_checkpoint_and_the_fit_resumes_once_space_is_freed(tmp_path, small_disk):
    fit = ("contrastive", 24, 6)
    reference = _result(_fit(tmp_path / "roomy", *fit))
    cache = small_disk("cache", 400 * 1024)  # one MiniLM checkpoint (~260 MB) fits, a second one does not
    done = _fit(cache, *fit)
    assert done.returncode != 0
    [error] = [line for line in done.stderr.splitlines() if "DiskFullError" in line]
    assert "No space left while fine-tuning contrastive-" in error
    assert f"MB free in {finetune.store_dir(cache)}" in error
    assert "The last good checkpoint is step 6" in error and "run the same command again to resume" in error
    [kept] = (finetune.store_dir(cache) / ".checkpoints").glob("*/checkpoint-*")
    assert kept.name == "checkpoint-6" and not (kept.parent / "staging").exists()

    subprocess.run(["mount", "-o", "remount,size=2g", str(cache)], check=True)  # space freed
    done = _fit(cache, *fit)
    resumed = _result(done)
    assert resumed["resumed"] == 6 and "at step 6 of 24" in done.stderr and resumed["steps"] == 24
    np.testing.assert_allclose(resumed["out"], reference["out"], atol=1e-5)
