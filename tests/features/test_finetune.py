"""Fine-tuning: the cross-encoder and the contrastive encoder learn, cache their weights by content, travel inside
the logged model, survive an interrupt, and fail clearly for a base model that cannot be loaded offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from safetensors.numpy import load_file

from stance.config import load_data
from stance.data.schema import to_frame
from stance.experiment import run_experiment
from stance.features import finetune
from stance.features.encoders import SentenceEmbedder
from stance.features.pretrained import DEFAULT_MODEL, ModelLoadError, resolve_model_path
from stance.models.cross_encoder import CrossEncoderClassifier, pairs_of
from tests.helpers import default_sigint

pytestmark = pytest.mark.slow
# A few fast steps: short sequences, small batches.
QUICK = {"max_length": 48, "batch_size": 8, "show_progress": False}


@pytest.fixture(scope="module")
def slice_() -> dict[str, pd.DataFrame]:
    data = load_data("semeval2016_task6", "data.limit=40")
    return {split: to_frame(ds) for split, ds in data.items()}


def _weights(folder: str | Path) -> dict[str, np.ndarray]:
    return load_file(str(next(Path(folder).glob("*.safetensors"))))


def test_a_few_steps_lower_the_training_loss_change_the_weights_and_log_to_mlflow(tmp_path, slice_):
    train = slice_["train"]
    model = CrossEncoderClassifier(
        epochs=6, learning_rate=2e-4, logging_steps=5, cache_dir=str(tmp_path), seed=1, **QUICK
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("finetune")  # not an experiment id another test left active in another store
    with mlflow.start_run() as run:
        model.fit(train, train["label"])
    history = MlflowClient().get_metric_history(run.info.run_id, f"finetune/{model.weights_key_}/loss")
    losses = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.1, losses  # 30 steps, logged every 5
    assert not model.fit_cached_ and model.fit_seconds_ > 0
    base, tuned = _weights(resolve_model_path(DEFAULT_MODEL)), _weights(model.weights_path_)
    name = "embeddings.word_embeddings.weight"
    tuned_name = next(k for k in tuned if k.endswith(name))
    assert base[name].shape == tuned[tuned_name].shape
    assert not np.allclose(base[name], tuned[tuned_name])
    assert list(model.classes_) == ["AGAINST", "FAVOR", "NONE"]
    assert model.predict_proba(slice_["test"]).shape == (len(slice_["test"]), 3)


def test_the_same_fit_again_reuses_the_cached_weights(tmp_path, slice_):
    train = slice_["train"]
    first = CrossEncoderClassifier(max_steps=2, cache_dir=str(tmp_path), **QUICK).fit(train, train["label"])
    again = CrossEncoderClassifier(max_steps=2, cache_dir=str(tmp_path), **QUICK).fit(train, train["label"])
    assert again.fit_cached_ and again.fit_seconds_ == 0 and again.weights_key_ == first.weights_key_
    other = CrossEncoderClassifier(max_steps=2, cache_dir=str(tmp_path), seed=2, **QUICK).fit(train, train["label"])
    assert not other.fit_cached_ and other.weights_key_ != first.weights_key_  # a new seed is new weights
    entries = sorted(p.name for p in finetune.store_dir(tmp_path).iterdir() if not p.name.startswith("."))
    assert entries == sorted([first.weights_key_, other.weights_key_])
    np.testing.assert_allclose(first.predict_proba(slice_["test"]), again.predict_proba(slice_["test"]))


def test_contrastive_fine_tuning_changes_the_vectors_and_is_cached(tmp_path, slice_):
    train = slice_["train"]
    settings = finetune.Contrastive(max_steps=3, batch_size=8, max_length=48, num_iterations=2)
    frozen = SentenceEmbedder(target_mode="prefix", cache_dir=str(tmp_path), show_progress=False)
    tuned = frozen.set_params(finetune=settings).fit(train, train["label"])
    assert tuned.weights_key_.startswith("contrastive-") and not tuned.fit_cached_
    plain = SentenceEmbedder(target_mode="prefix", cache_dir=str(tmp_path), show_progress=False).fit(train)
    a, b = tuned.transform(train.head(5)), plain.transform(train.head(5))
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-3  # different encoder, different vectors
    again = SentenceEmbedder(target_mode="prefix", cache_dir=str(tmp_path), show_progress=False, finetune=settings).fit(
        train, train["label"]
    )
    assert again.fit_cached_ and again.weights_key_ == tuned.weights_key_
    np.testing.assert_array_equal(again.transform(train.head(5)), a)


def test_a_sweep_over_heads_fine_tunes_once(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable, "-m", "stance.train", "-m", "features=minilm_finetuned", "classifier=logreg,knn",
        "per_target=false", "bootstrap=0", "data.limit=40", "mlflow.log_model=false", "features.show_progress=false",
        "features.finetune.max_steps=2", "features.finetune.batch_size=8", "features.finetune.max_length=48",
        f"mlflow.tracking_uri={store}", f"hydra.sweep.dir={tmp_path}/multirun",
    ]  # fmt: skip
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("stance").experiment_id], "attributes.status = 'FINISHED'"
    )
    children = [r for r in jobs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert sorted(r.data.metrics["finetune/cached"] for r in children) == [0.0, 1.0]
    assert len([p for p in finetune.store_dir(tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1


_FIT_SCRIPT = """
import sys
from stance.models.cross_encoder import CrossEncoderClassifier
from stance.data.schema import to_frame
from stance.config import load_data
train = to_frame(load_data("semeval2016_task6", "data.limit=40")["train"])
model = CrossEncoderClassifier(max_steps=int(sys.argv[1]), max_length=48, batch_size=8, show_progress=False)
model.fit(train, train["label"])
print("CACHED" if model.fit_cached_ else "TRAINED", model.weights_key_)
"""


def test_two_jobs_needing_the_same_weights_train_them_once(tmp_path):
    env = {**os.environ, "STANCE_CACHE": str(tmp_path)}
    jobs = [
        subprocess.Popen([sys.executable, "-c", _FIT_SCRIPT, "6"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = sorted(job.communicate(timeout=900)[0].split()[-2] for job in jobs)
    assert [job.returncode for job in jobs] == [0, 0]
    assert outputs == ["CACHED", "TRAINED"]


def test_an_interrupted_fine_tune_leaves_no_entry_and_the_rerun_succeeds(tmp_path):
    env = {**os.environ, "STANCE_CACHE": str(tmp_path)}
    store = finetune.store_dir(tmp_path)
    log = tmp_path / "fit.log"
    with log.open("w") as out:
        # Steps enough never to finish on any machine: the interrupt always lands mid-fit.
        command = [sys.executable, "-c", _FIT_SCRIPT, "100000"]
        job = subprocess.Popen(command, env=env, stdout=out, stderr=out, preexec_fn=default_sigint)
        deadline = time.monotonic() + 300
        # The staging folder exists while the trainer runs; interrupt once it has started training.
        while not (store.exists() and any(p.name.startswith(".cross-encoder-") for p in store.iterdir())):
            assert job.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(8)
        job.send_signal(signal.SIGINT)
        assert job.wait(timeout=120) != 0
    assert "KeyboardInterrupt" in log.read_text()
    assert [p.name for p in store.iterdir() if not p.name.endswith(".lock")] == []  # no entry, no staging folder
    done = subprocess.run([sys.executable, "-c", _FIT_SCRIPT, "2"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[-2] == "TRAINED", done.stderr[-3000:]
    assert (store / done.stdout.split()[-1] / finetune.COMPLETE).is_file()


_PREDICT_SCRIPT = """
import json, sys
import pandas as pd
import stance
frame = pd.read_json(sys.argv[2], orient="records")
print(json.dumps(stance.load_model(sys.argv[1]).predict_proba(frame).tolist()))
"""


def test_a_logged_fine_tuned_model_predicts_identically_with_an_empty_cache(tmp_path, make_cfg):
    cfg = make_cfg(
        "features=identity", "classifier=cross_encoder", "per_target=false", "bootstrap=0", "data.limit=40",
        "classifier.max_steps=3", "classifier.max_length=48", "classifier.batch_size=8",
        "classifier.show_progress=false", f"classifier.cache_dir={tmp_path}/cache",
    )  # fmt: skip
    result = run_experiment(cfg)
    test = result.frames["test"][["text", "target"]].reset_index(drop=True)
    expected = result.model.predict_proba(test)
    (tmp_path / "test.json").write_text(test.to_json(orient="records"))
    uri = f"runs:/{result.run_id}/model"
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "empty"), "MLFLOW_TRACKING_URI": cfg.mlflow.tracking_uri}
    done = subprocess.run(
        [sys.executable, "-c", _PREDICT_SCRIPT, uri, str(tmp_path / "test.json")],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.array(json.loads(done.stdout.splitlines()[-1])), expected, atol=1e-6)
    assert not (tmp_path / "empty" / "finetuned").exists()  # the weights came from the model, not a cache
    run = MlflowClient(cfg.mlflow.tracking_uri).get_run(result.run_id)
    assert run.data.metrics["finetune/models"] == 1 and run.data.metrics["time/finetune_seconds"] > 0


def test_a_base_model_that_cannot_be_loaded_offline_is_one_clear_error(tmp_path, slice_):
    train = slice_["train"]
    model = CrossEncoderClassifier(model="no-such-org/no-such-model", cache_dir=str(tmp_path), **QUICK)
    with pytest.raises(ModelLoadError, match="Cannot load base model 'no-such-org/no-such-model'.*Offline"):
        model.fit(train, train["label"])
    tuned = SentenceEmbedder("no-such-org/no-such-model", cache_dir=str(tmp_path), finetune=finetune.Contrastive())
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        tuned.fit(train, train["label"])
    assert [p.name for p in finetune.store_dir(tmp_path).iterdir() if not p.name.endswith(".lock")] == []
    command = [
        sys.executable, "-m", "stance.train", "features=identity", "classifier=cross_encoder", "per_target=false",
        "classifier.model=no-such-org/no-such-model", "data.limit=20", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db",
        f"hydra.run.dir={tmp_path}/outputs",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: Cannot load base model 'no-such-org/no-such-model'")


def test_pairs_put_the_target_first_and_use_an_empty_target_without_one():
    frame = pd.DataFrame({"text": ["a", "b"], "target": ["T", "U"]})
    assert pairs_of(frame) == [["T", "a"], ["U", "b"]]
    assert pairs_of(frame[["text"]]) == [["", "a"], ["", "b"]]
    with pytest.raises(ValueError, match="Input row 1, column 'text'"):
        pairs_of(pd.DataFrame({"text": ["a", None]}))


def test_torchrun_with_two_cpu_processes_trains_one_model_and_logs_one_run(tmp_path):
    from tests.helpers import runs

    store, scratch = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "tmp"
    scratch.mkdir()
    command = [
        str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2", "-m", "stance.train",
        "features=identity", "classifier=cross_encoder", "per_target=false", "bootstrap=0", "data.limit=40",
        "classifier.max_steps=4", "classifier.max_length=48", "classifier.batch_size=8",
        "classifier.show_progress=false", f"mlflow.tracking_uri={store}", f"hydra.run.dir={tmp_path}/outputs",
    ]  # fmt: skip
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache"), "TMPDIR": str(scratch)}
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "data-parallel: rank 0 of 2" in done.stdout and "data-parallel: rank 1 of 2" in done.stdout
    assert done.stdout.count("MLflow run id:") == 1  # rank 0 reports; rank 1 logged into a throwaway store
    [run] = runs(store)
    assert run.info.status == "FINISHED" and run.data.metrics["finetune/models"] == 1
    store_dir = finetune.store_dir(tmp_path / "cache")
    assert len([p for p in store_dir.iterdir() if not p.name.startswith(".")]) == 1  # one model, written once
    assert not list(scratch.glob("stance-rank*"))  # rank 1's throwaway store is gone
