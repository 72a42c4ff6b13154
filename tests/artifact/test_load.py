"""Models that load anywhere: in a fresh process, naming the versions that differ from the ones logged; every kind of
pipeline through skops, a huge vocabulary included; without importing torch; a model logged before `stance.artifact`
existed, both ways; from another folder with the line training printed, and one message naming the store when the
model is not there (`stance.artifact.save`, `stance.artifact.load`)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

import stance
from stance.artifact import load, save
from tests.conftest import compose
from tests.helpers import FIXTURES, NEW


@pytest.fixture(scope="module")
def tfidf_model():
    """A small TF-IDF + logistic regression pipeline (no encoder: fast) and a slice of test data."""
    from hydra.utils import instantiate

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.models.estimators import build_model

    data = semeval2016_task6(limit=200)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    cfg = compose("features=tfidf")
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
    from hydra.utils import instantiate
    from sklearn.frozen import FrozenEstimator

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.models.estimators import PriorAdjusted, build_model

    data = semeval2016_task6(limit=120)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    cfg = compose(f"features={features_name}", f"classifier={classifier}")
    model = build_model(instantiate(cfg.features), instantiate(cfg.classifier), per_target=per_target)
    model.fit(train, train["label"])
    if prior_adjusted:
        model = PriorAdjusted(FrozenEstimator(model), {"FAVOR": 1.3}).fit(train, train["label"])
    path = save.dump_pipeline(model, tmp_path)
    assert path.suffix == ".skops"
    loaded = load.load_pipeline(path)
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))


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


# A model logged by commit b60c79b, before `stance.artifact` existed: MiniLM features and a logistic regression per
# target, trained on a few dozen made-up rows (`data=files`). Its skops file names `stance.features.encoders` and
# `stance.models.per_target` classes; its code file runs `from stance.tracking.pyfunc import StanceModel`. The wheel it
# was logged with (160 kB of this package's source) is left out: neither loader reads it.
LEGACY_MODEL = FIXTURES / "legacy_model_b60c79b"
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


def _shell_env() -> dict[str, str]:
    """A user's shell: no MLflow store chosen (`mlflow.set_tracking_uri` in earlier tests exports one)."""
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}


@pytest.mark.slow
def test_a_run_trained_in_one_folder_loads_from_another_with_the_line_training_printed(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    env = _shell_env()
    train = [sys.executable, "-m", "stance.train", "data.limit=200", "bootstrap=0", "features.show_progress=false"]
    done = subprocess.run(train, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"MLflow run id: (\w+)", done.stdout)[1]
    store = f"sqlite:///{project}/mlflow.db"  # absolute, though training ran with the default sqlite:///mlflow.db
    load_line = f'import stance; model = stance.load_model("runs:/{run_id}/model", tracking_uri="{store}")'
    assert f"MLflow run id: {run_id}  (tracking URI: {store})\nModel: runs:/{run_id}/model\n" in done.stdout
    assert f"Load it from any folder: {load_line}\n" in done.stdout

    # What the user did: the run's URI alone, from another folder (MLflow's default store there: ./mlflow.db).
    code = f"import stance; stance.load_model('runs:/{run_id}/model')"
    lost = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert lost.returncode == 1
    assert lost.stderr.strip().splitlines()[-1] == (
        f"stance.artifact.load.ModelNotFoundError: Cannot load runs:/{run_id}/model: it is looked up in the MLflow "
        f"store sqlite:///{elsewhere}/mlflow.db, and there is no such file (none was created). Point at the store it "
        f'was logged to (the end of training prints it): stance.load_model("runs:/{run_id}/model", '
        'tracking_uri="sqlite:////path/to/mlflow.db"), or set MLFLOW_TRACKING_URI to it.'
    )
    assert "site-packages/mlflow" not in lost.stderr  # no frame from inside MLflow
    NEW.to_csv(elsewhere / "statements.csv", index=False)
    predict = [sys.executable, "-m", "stance.cli", "predict", f"runs:/{run_id}/model", "statements.csv", "-o", "o.csv"]
    cli = subprocess.run(predict, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().splitlines()[-1].startswith(f"error: Cannot load runs:/{run_id}/model: it is looked up")
    assert not (elsewhere / "mlflow.db").exists()

    # The line training printed, pasted there.
    code = f"{load_line}; import pandas as pd; print(list(model.predict(pd.DataFrame({NEW.to_dict('list')!r}))))"
    found = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-3000:]
    expected = list(stance.load_model(str(project / f"mlruns/stance/{run_id}/artifacts/model")).predict(NEW))
    assert found.stdout.strip().splitlines()[-1] == repr(expected)
    assert not (elsewhere / "mlflow.db").exists()


@pytest.mark.slow
def test_a_model_the_store_lacks_is_one_message_naming_the_store(default_run, tmp_path):
    uri, store = default_run.uri, f"sqlite:///{default_run.store}/mlflow.db"
    with pytest.raises(load.ModelNotFoundError) as err:
        stance.load_model("runs:/0123abc/model", tracking_uri=uri)
    assert str(err.value).startswith(f"Cannot load runs:/0123abc/model: the MLflow store {store} has no run 0123abc.")
    with pytest.raises(load.ModelNotFoundError, match=rf"run {default_run.run_id} in the MLflow store .* no model th"):
        stance.load_model(f"runs:/{default_run.run_id}/modl", tracking_uri=uri)
    with pytest.raises(load.ModelNotFoundError) as err:
        stance.load_model("models:/semeval@champion", tracking_uri=uri)
    assert str(err.value).startswith(
        f"Cannot load models:/semeval@champion: the MLflow store {store} says: Registered Model with name=semeval not "
        "found. Register a run's model as semeval (python -m stance.train mlflow.register=semeval), or point at"
    )
    with pytest.raises(load.ModelNotFoundError, match=f"there is no model folder at {tmp_path}/nope"):
        stance.load_model(str(tmp_path / "nope"))


@pytest.mark.slow
def test_a_registered_name_loads_from_the_store_given_whatever_mlflows_own_store(default_run, tmp_path):
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # MLflow looks up logged models and names here
    try:
        model = stance.load_model("models:/deployed@champion", tracking_uri=default_run.uri)
    finally:
        mlflow.set_tracking_uri(before)
    assert list(model.predict(NEW)) == list(default_run.result.model.predict(NEW))
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_model_logged_under_the_name_model_loads_by_its_run(tfidf_model, tmp_path):
    model, test = tfidf_model
    store = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("before-run-names")
    with mlflow.start_run() as run:  # as models were logged before they were named after their run
        save.log_model(model, test.head(3), {}, save.requirements(), task={})
    assert not list(tmp_path.rglob("artifacts/model"))  # no copy among the run's artifacts: the logged model it is
    loaded = stance.load_model(f"runs:/{run.info.run_id}/model", tracking_uri=store)
    assert list(loaded.predict(test)) == list(model.predict(test))
