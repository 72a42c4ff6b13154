"""Faults and bad input: interrupts, concurrent sweeps, reproducibility, model portability and safety, fuzzing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import stance
from stance.artifact import load, save, trust
from stance.experiment import run_experiment
from stance.features import encoders as features
from stance.features.cache import DB_NAME
from stance.tracking import redact
from stance.tracking.server import check_tracking_uri, retry_busy

SLICE = ["per_target=false", "bootstrap=0", "features.show_progress=false", "mlflow.log_model=false"]


def train_command(store: str, workdir: Path, *overrides: str, multirun: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "stance.train", *(["-m"] if multirun else []), *SLICE, f"mlflow.tracking_uri={store}",
        f"hydra.run.dir={workdir}/outputs", f"hydra.sweep.dir={workdir}/multirun", *overrides,
    ]  # fmt: skip


def runs(store: str) -> list:
    check_tracking_uri(store)  # creates the store under the same lock as the training processes polled here
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("stance")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def cache_entries(folder: Path) -> int:
    """Entries in an embedding cache, after checking the SQLite file and every vector's length."""
    with closing(sqlite3.connect(folder / DB_NAME)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM embeddings WHERE LENGTH(vector) != 4 * dim").fetchone() == (0,)
        return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]


def cached_so_far(folder: Path) -> int:
    """Entries a run has committed to the cache so far (0 while it is still creating the file or its table)."""
    try:
        return cache_entries(folder) if (folder / DB_NAME).exists() else 0
    except sqlite3.OperationalError:
        return 0


def wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.slow
def test_interrupted_runs_end_killed_keep_the_cache_and_a_rerun_succeeds(tmp_path):
    store, cache = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "cache"
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    # Small batches: the cache gets vectors every 32 x 16 texts, long before the run ends. Progress is watched in the
    # cache alone: it is cheap to poll, and a run commits vectors only while its MLflow run is open.
    command = train_command(store, tmp_path, "data.limit=2000", "features.batch_size=16")
    log = tmp_path / "train.log"

    def start() -> subprocess.Popen:
        # As from a terminal: a shell's background job (nohup ... &, some CI runners) inherits SIGINT ignored.
        default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
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


def default_sigint() -> None:
    """As from a terminal: a shell's background job (nohup ... &, some CI runners) inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sweep_results(store: str, run_id: str) -> pd.DataFrame:
    return pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="sweep_results.csv", tracking_uri=store)
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_sweep_ends_parent_and_job_killed_with_the_partial_table(tmp_path, signum):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache")}  # a cold cache: the first job is still encoding
    command = train_command(store, tmp_path, "classifier=logreg,svm", "data.limit=300", multirun=True)
    log = tmp_path / "sweep.log"
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=default_sigint
    )
    wait_for(lambda: any("mlflow.parentRunId" in r.data.tags for r in runs(store)), "job run", process, log)
    process.send_signal(signum)
    assert process.wait(timeout=120) != 0, log.read_text()[-3000:]
    logged = runs(store)
    [parent] = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    [job] = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
    assert (parent.info.status, job.info.status) == ("KILLED", "KILLED"), log.read_text()[-3000:]
    table = sweep_results(store, parent.info.run_id)
    assert table[["run_id", "status"]].values.tolist() == [[job.info.run_id, "KILLED"]]
    assert "classifier=logreg" in table["overrides"][0].split()


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
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"sweep{i}.log").open("w"),
        )
        for i in range(2)
    ]
    for i, sweep in enumerate(sweeps):
        assert sweep.wait(timeout=1500) == 0, (tmp_path / f"sweep{i}.log").read_text()[-3000:]

    logged = runs(store)
    parents = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4
    logs = "\n".join((tmp_path / f"sweep{i}.log").read_text()[-3000:] for i in range(2))
    assert [r.info.status for r in logged] == ["FINISHED"] * 6, logs
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


@pytest.mark.slow
def test_a_store_locked_past_mlflows_busy_timeout_is_retried_not_failed(tmp_path, caplog):
    import threading

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


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(make_cfg, tmp_path):
    overrides = ["data.limit=200", "tune_class_weights=true", "bootstrap=200", "features.show_progress=false"]
    overrides += ["mlflow.log_model=false"]
    first = run_experiment(make_cfg(f"features.cache_dir={tmp_path}/a", *overrides), overrides)
    features._MEMO.clear()  # encode again from scratch rather than reuse this process's vectors
    second = run_experiment(make_cfg(f"features.cache_dir={tmp_path}/b", *overrides), overrides)
    assert first.evaluation.metrics == second.evaluation.metrics
    client = MlflowClient(tracking_uri=make_cfg().mlflow.tracking_uri)
    logged = [client.get_run(r.run_id).data.metrics for r in (first, second)]
    quality = [{k: v for k, v in m.items() if not k.startswith(("time/", "peak_rss"))} for m in logged]
    assert quality[0] == quality[1] and "test/f_avg_ci_low" in quality[0]


@pytest.mark.slow
def test_vectors_and_metrics_do_not_depend_on_batching_or_cache_history(make_cfg, tmp_path):
    """Cold cache, warm cache, and a cache warmed up by other batches of the same texts: the same vectors, metrics."""
    from stance.features.cache import EmbeddingCache
    from stance.features.encoders import SentenceEmbedder

    overrides = ["data.limit=150", "bootstrap=0", "features.show_progress=false", "mlflow.log_model=false"]

    def run(cache: Path):
        features._MEMO.clear()  # as a new process: vectors come from the disk cache or the encoder
        return run_experiment(make_cfg(f"features.cache_dir={cache}", *overrides), overrides)

    cold = run(tmp_path / "a")
    warm = run(tmp_path / "a")
    texts = sorted({t for frame in cold.frames.values() for column in ("text", "target") for t in frame[column]})
    features._MEMO.clear()  # so that the warm-up encodes, rather than finding the runs' vectors in this process
    warmup = SentenceEmbedder(cache_dir=str(tmp_path / "b"), show_progress=False)
    warmup.encode(texts[::3])  # other companions in every batch, other padded lengths
    for text in texts[1::25]:
        warmup.encode([text])  # alone
    after_warmup = run(tmp_path / "b")
    assert cold.evaluation.metrics == warm.evaluation.metrics == after_warmup.evaluation.metrics
    first = EmbeddingCache(tmp_path / "a").get(warmup.namespace(), texts)
    second = EmbeddingCache(tmp_path / "b").get(warmup.namespace(), texts)
    assert first.keys() == second.keys() == set(texts)
    assert [t for t in texts if not np.array_equal(first[t], second[t])] == []  # bit-identical


@pytest.fixture(scope="module")
def tfidf_model():
    """A small TF-IDF + logistic regression pipeline (no encoder: fast) and a slice of test data."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.models.estimators import build_model
    from tests.conftest import CONF

    data = semeval2016_task6(limit=200)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["features=tfidf"])
    model = build_model(instantiate(cfg.features), instantiate(cfg.classifier), per_target=True)
    return model.fit(train, train["label"]), test[["text", "target"]].reset_index(drop=True)


LOAD_IN_FRESH_PROCESS = """
import json, sys, warnings
import mlflow, pandas as pd, stance
mlflow.set_tracking_uri(sys.argv[1])
frame = pd.DataFrame(json.loads(sys.argv[2]))
out = {}
for uri in sys.argv[3:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = stance.load_model(uri)
    messages = [str(w.message) for w in caught if w.category.__name__ == "ModelVersionWarning"]
    out[uri] = {"predictions": list(model.predict(frame)), "warnings": messages}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_model_loads_in_fresh_process_and_names_version_differences(tfidf_model, tmp_path):
    from stance.artifact.save import requirements

    model, test = tfidf_model
    store = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("portability")  # not the active experiment of an earlier test's store
    current = {"stance_version": save.stance_version()}
    old = {"stance_version": "0.0.1"}
    old_requirements = ["scikit-learn==1.0.2", *[r for r in requirements() if not r.startswith("scikit-learn")]]
    with mlflow.start_run():
        uris = {
            "current": save.log_model(model, test.head(3), current, requirements(), task={}),
            "old": save.log_model(model, test.head(3), old, old_requirements, task={}),
        }
    args = [store, json.dumps(test.to_dict(orient="list")), uris["current"], uris["old"]]
    done = subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    expected = list(model.predict(test))
    assert loaded[uris["current"]] == {"predictions": expected, "warnings": []}
    assert loaded[uris["old"]]["predictions"] == expected
    [message] = loaded[uris["old"]]["warnings"]
    installed = importlib.metadata.version("scikit-learn")
    assert "stance==0.0.1 (installed: " in message and f"scikit-learn==1.0.2 (installed: {installed})" in message
    assert "pip install -r" in message


@pytest.mark.slow
@pytest.mark.parametrize(
    "features_name, classifier, per_target, prior_adjusted",
    [
        ("minilm", "logreg", True, True),
        ("tfidf", "svm", False, False),
        ("tfidf_minilm", "logreg", True, False),
        ("identity", "stacking", False, False),
    ],
)
def test_pipelines_round_trip_through_skops(features_name, classifier, per_target, prior_adjusted, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from sklearn.frozen import FrozenEstimator

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.models.estimators import PriorAdjusted, build_model
    from tests.conftest import CONF

    data = semeval2016_task6(limit=120)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    overrides = [f"features={features_name}", f"classifier={classifier}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    model = build_model(instantiate(cfg.features), instantiate(cfg.classifier), per_target=per_target)
    model.fit(train, train["label"])
    if prior_adjusted:
        model = PriorAdjusted(FrozenEstimator(model), {"FAVOR": 1.3}).fit(train, train["label"])
    path = save.dump_pipeline(model, tmp_path)
    assert path.suffix == ".skops"
    loaded = load.load_pipeline(path)
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))


def test_pipeline_with_a_foreign_type_is_not_loaded(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    path = save.dump_pipeline(FunctionTransformer(func=os.getcwd), tmp_path)
    with pytest.raises(trust.UntrustedModelError, match="posix.getcwd"):
        load.load_pipeline(path)


@pytest.mark.slow
def test_huge_vocabulary_stays_in_skops_and_loads_without_pickle(tmp_path):
    import time

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.features.encoders import tfidf

    train = to_frame(semeval2016_task6()["train"])
    model = tfidf().fit(train)
    assert save.vocabulary_size(model) > save.SKOPS_MAX_TERMS
    start = time.perf_counter()
    path = save.dump_pipeline(model, tmp_path)
    assert path.suffix == ".skops" and time.perf_counter() - start < 60  # plain skops took minutes
    loaded = load.load_pipeline(path)
    assert (loaded.transform(train.head(50)) != model.transform(train.head(50))).nnz == 0
    assert save.vocabulary_size(loaded) == save.vocabulary_size(model)
    assert type(model.transformers_[0][1]).__module__.startswith("sklearn")  # the caller's model is left as it was


class RunsCode:
    """Unpickling this calls `os.mkdir(marker)`: a stand-in for any command a crafted pickle runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def crafted_model(folder: Path, pipeline: str, content: bytes) -> Path:
    """A model folder as an attacker would ship it: an MLmodel naming `pipeline`, and that file."""
    folder.mkdir()
    (folder / pipeline).write_bytes(content)
    (folder / "MLmodel").write_text(
        f"flavors:\n  python_function:\n    artifacts:\n      pipeline:\n        path: {pipeline}\n"
        f"        uri: {pipeline}\n    loader_module: mlflow.pyfunc.model\n"
    )
    return folder


def test_a_model_pointing_at_a_pickle_is_refused_and_runs_nothing(tmp_path):
    import pickle

    marker = tmp_path / "code-ran"
    folder = crafted_model(tmp_path / "model", "pipeline.joblib", pickle.dumps(RunsCode(marker)))
    with pytest.raises(trust.UntrustedModelError, match=r"pipeline.joblib is a pickle .*allow_pickle=True"):
        stance.load_model(str(folder))
    assert not marker.exists()
    stance.load_model(str(folder), allow_pickle=True)  # the caller's explicit choice: the file's code runs
    assert marker.exists()


def test_a_skops_file_naming_a_function_of_a_trusted_module_is_refused(tmp_path):
    """skops calls what a ConstructorFromReduceNode names; `stance.config.instantiate` would run `os.mkdir`."""
    import zipfile

    skops_io = trust.import_skops()
    marker = tmp_path / "code-ran"
    skops_io.dump(({"_target_": "os.mkdir", "path": str(marker)},), tmp_path / "args.skops")
    with zipfile.ZipFile(tmp_path / "args.skops") as archive:
        arguments = json.loads(archive.read("schema.json"))
    header = {key: arguments.pop(key) for key in ("protocol", "_skops_version")}
    call = {"__class__": "instantiate", "__module__": "stance.config", "__loader__": "ConstructorFromReduceNode"}
    buffer = tmp_path / "pipeline.skops"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps({**call, "content": arguments, "__id__": 1, **header}))
    folder = crafted_model(tmp_path / "model", "pipeline.skops", buffer.read_bytes())
    with pytest.raises(trust.UntrustedModelError, match="not classes of .*: stance.config.instantiate"):
        stance.load_model(str(folder))
    assert not marker.exists()


def test_a_model_pointing_outside_its_folder_is_refused(tmp_path):
    folder = crafted_model(tmp_path / "model", "../elsewhere.skops", b"")
    with pytest.raises(trust.UntrustedModelError, match="points outside the model folder"):
        stance.load_model(str(folder))


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
    from tests.test_server import start_server, stop

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
    assert sum(path.name == "MLmodel" for path in stored) == 2  # the logged models' files were searched too
    for secret in (token, password):
        leaks = [text[max(0, text.find(secret) - 200) : text.find(secret) + 50] for text in shown if secret in text]
        assert not leaks, f"{secret} leaked: {leaks[:3]}"
    assert f"stance:{redact.REDACTED}@127.0.0.1" in done.stdout  # the URI is shown, its password masked


# Fuzzing the loaded model's input: any strings give a valid prediction; anything else one clear ValueError.
KNOWN_TARGETS = ["Atheism", "Climate Change is a Real Concern", "Feminist Movement", "Hillary Clinton"]
SCRIPTS = st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z"])
TEXTS = st.one_of(
    st.text(max_size=80),
    st.text(SCRIPTS, max_size=80),
    st.sampled_from(["", " ", "\n", "😀" * 3, "Привет мир", "مرحبا بالعالم", "你好，世界", "नमस्ते दुनिया"]),
    st.builds(lambda s, n: s * n, st.text(SCRIPTS, min_size=1, max_size=20), st.integers(300, 1500)),  # very long
)
FRAMES = st.lists(st.tuples(TEXTS, st.one_of(st.sampled_from(KNOWN_TARGETS), TEXTS)), min_size=1, max_size=4).map(
    lambda rows: pd.DataFrame(rows, columns=["text", "target"])
)
BAD_VALUES = st.sampled_from([None, float("nan"), pd.NA, 7, 2.5, b"bytes"])
# Column sets lacking `text` or `target` (or both), with other names beside them.
COLUMNS = st.lists(
    st.one_of(st.sampled_from(["text", "target"]), st.text(min_size=1, max_size=10)),
    min_size=1,
    max_size=3,
    unique=True,
).filter(lambda columns: not {"text", "target"} <= set(columns))
FUZZ = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The default experiment (MiniLM, one model per target) fitted on a slice, logged, and loaded back two ways."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    folder = tmp_path_factory.mktemp("served")
    overrides = ["data.limit=150", "bootstrap=0", "features.show_progress=false", f"features.cache_dir={folder}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"mlflow.tracking_uri=sqlite:///{folder}/mlflow.db", *overrides])
    result = run_experiment(cfg, overrides)
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    uri = f"runs:/{result.run_id}/model"
    return stance.load_model(uri), mlflow.pyfunc.load_model(uri)


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES)
def test_fuzz_any_strings_give_valid_predictions(served, frame):
    model, pyfunc = served
    labels = model.predict(frame)
    proba = model.predict_proba(frame)
    assert len(labels) == len(frame) and set(labels) <= set(model.classes_)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    out = pyfunc.predict(frame)
    assert out["label"].tolist() == [str(label) for label in labels]


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES, bad=BAD_VALUES, column=st.sampled_from(["text", "target"]), data=st.data())
def test_fuzz_a_bad_value_is_one_clear_error_naming_row_and_column(served, frame, bad, column, data):
    model, pyfunc = served
    row = data.draw(st.integers(0, len(frame) - 1))
    frame = frame.astype(object)
    frame.at[row, column] = bad
    with pytest.raises(ValueError, match=rf"row {row}, column '{column}'"):
        model.predict(frame)
    with pytest.raises((ValueError, MlflowException), match=column):
        pyfunc.predict(frame)


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES, columns=COLUMNS)
def test_fuzz_wrong_or_missing_columns_are_named(served, frame, columns):
    model, pyfunc = served
    wrong = pd.DataFrame({column: frame["text"] for column in columns})
    named = "|".join(f"'{column}'" for column in ("text", "target") if column not in columns)
    with pytest.raises(ValueError, match=named):
        model.predict(wrong)
    with pytest.raises((ValueError, MlflowException), match=named):
        pyfunc.predict(wrong)


@pytest.mark.slow
def test_empty_frame_gives_empty_predictions(served):
    model, _ = served
    assert len(model.predict(pd.DataFrame({"text": [], "target": []}, dtype=str))) == 0


def test_saving_and_loading_a_pipeline_does_not_import_torch(tmp_path):
    script = f"""
import pathlib, sys
from sklearn.linear_model import LogisticRegression
from stance.artifact import load, save
path = save.dump_pipeline(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), pathlib.Path({str(tmp_path)!r}))
assert load.load_pipeline(path).predict([[1.0]])[0] == 1
assert "torch" not in sys.modules, "skops pulled in torch"
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_mlflow_telemetry_is_off_unless_the_user_asks_for_it() -> None:
    """Offline, MLflow's telemetry thread unsets an environment variable mid-run: importing stance turns it off."""
    # pytest and CI variables switch MLflow's telemetry off by themselves; a user's shell has neither.
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_CURRENT_TEST", "MLFLOW_DISABLE_TELEMETRY"}}
    code = (
        "import os, stance, mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], get_telemetry_client())"
    )
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split() == ["true", "None"]
    code = "import os, stance; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    env["MLFLOW_DISABLE_TELEMETRY"] = "false"
    asked = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert asked.stdout.split() == ["false"]


# A model logged by commit b60c79b, before `stance.artifact` existed: MiniLM features and a logistic regression per
# target, trained on a few dozen made-up rows (`data=files`). Its skops file names `stance.features.encoders` and
# `stance.models.per_target` classes; its code file runs `from stance.tracking.pyfunc import StanceModel`. The wheel it
# was logged with (160 kB of this package's source) is left out: neither loader reads it.
LEGACY_MODEL = Path(__file__).parent / "fixtures" / "legacy_model_b60c79b"
LEGACY_INPUT = {
    "text": [
        "Painted cycle lanes on every road would save lives.",
        "Tear out the bike lane, it kills parking.",
        "The bakery near the station sells rye bread.",
        "A four-day week made our team far happier.",
        "Shops would lose sales on a four-day week.",
        "The canteen serves soup on Mondays.",
    ],
    "target": ["bike lanes"] * 3 + ["four-day week"] * 3,
}
# What b60c79b's own `stance.load_model` and `mlflow.pyfunc.load_model` predicted for LEGACY_INPUT.
LEGACY_LABELS = ["FAVOR", "AGAINST", "NONE", "FAVOR", "AGAINST", "NONE"]


@pytest.mark.slow
def test_a_model_logged_before_the_artifact_package_loads_both_ways():
    import mlflow.pyfunc

    frame = pd.DataFrame(LEGACY_INPUT)
    assert list(stance.load_model(str(LEGACY_MODEL)).predict(frame)) == LEGACY_LABELS
    assert mlflow.pyfunc.load_model(str(LEGACY_MODEL)).predict(frame)["label"].tolist() == LEGACY_LABELS
