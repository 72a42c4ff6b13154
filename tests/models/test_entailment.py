"""The entailment classifier: labels as hypotheses, an NLI stage then zero-shot use, one clear error per bad input,
and a logged model that predicts identically in a fresh process with an empty cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from transformers import AutoConfig

import stance
from stance.config import compose_config, load_data
from stance.data.schema import DataError, to_frame
from stance.experiment import run_experiment
from stance.features import finetune
from stance.features.pretrained import ModelLoadError
from stance.models.entailment import EntailmentClassifier, HypothesisError, entailment_pairs, templates

# A few fast steps: short sequences, small batches.
QUICK = {"max_length": 48, "batch_size": 8, "show_progress": False}
STANCE = {
    "FAVOR": "The author of this text supports {target}.",
    "AGAINST": "The author of this text opposes {target}.",
    "NONE": "The author of this text has no opinion about {target}.",
}
LABELS = ["AGAINST", "FAVOR", "NONE"]
# A target no SemEval row has.
UNSEEN = pd.DataFrame({"text": ["Finland joining was a mistake that will cost us."], "target": ["NATO expansion"]})


@pytest.fixture(scope="module")
def semeval() -> dict[str, pd.DataFrame]:
    return {split: to_frame(ds) for split, ds in load_data("semeval2016_task6", "data.limit=40").items()}


def _rows(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Test rows and a row whose target was never seen in training."""
    return pd.concat([frames["test"][["text", "target"]].head(6), UNSEEN], ignore_index=True)


def _entries(cache) -> list[str]:
    return sorted(p.name for p in finetune.store_dir(cache).glob("*") if not p.name.startswith("."))


def test_the_templates_follow_the_task():
    assert compose_config("classifier=entailment").classifier.hypotheses == STANCE
    assert compose_config("classifier=entailment", "task=nli").classifier.hypotheses is None
    assert set(compose_config("classifier=entailment", "task=claim").classifier.hypotheses) == {"0", "1"}
    assert "{label}" in compose_config("classifier=entailment", "task=topic").classifier.hypotheses
    # A null template leaves its label out: P-Stance's benchmark is FAVOR/AGAINST.
    two = compose_config("experiment=pstance_cross_target").classifier.hypotheses
    assert list(templates(two, ["AGAINST", "FAVOR"])) == ["FAVOR", "AGAINST"]


def test_one_true_and_one_false_hypothesis_per_row():
    texts, targets, labels = ["a", "b", "c"], ["T", "U", "V"], ["FAVOR", "NONE", "AGAINST"]
    pairs, truth = entailment_pairs(texts, targets, labels, STANCE, "one", seed=1)
    assert truth == [True, False] * 3 and [p[0] for p in pairs] == ["a", "a", "b", "b", "c", "c"]
    assert pairs[0][1] == "The author of this text supports T." and pairs[1][1] != pairs[0][1]
    assert {pairs[1][1], pairs[3][1], pairs[5][1]} <= {STANCE[k].format(target=t) for k in STANCE for t in targets}
    assert (pairs, truth) == entailment_pairs(texts, targets, labels, STANCE, "one", seed=1)  # seeded
    every, truth = entailment_pairs(texts, targets, labels, STANCE, "all")
    assert len(every) == 9 and truth == [True, False, False] * 3


BAD = {
    "a template without {target}": (
        {**STANCE, "NONE": "The author of this text is neutral."}, {}, "classifier.hypotheses.NONE has no {target}"
    ),
    "an empty label set": ({}, {}, "classifier.hypotheses is empty"),
    "two labels with one text": (
        {**STANCE, "AGAINST": STANCE["FAVOR"]}, {},
        "classifier.hypotheses.AGAINST and classifier.hypotheses.FAVOR give the same hypothesis",
    ),
    "a label without a template": (
        {k: v for k, v in STANCE.items() if k != "NONE"}, {}, r"classifier.hypotheses has no template for .*\['NONE'\]"
    ),
    "an unknown field": ({**STANCE, "NONE": "No view on {topic}."}, {}, r"hypotheses.NONE names \['topic'\]"),
    "an unknown sampling scheme": (STANCE, {"negatives": "some"}, "classifier.negatives must be one of"),
    "a base model with no entailment label": (
        STANCE, {"zero_shot": True}, r"classifier.model .*all-MiniLM-L6-v2' has no entailment label in its id2label"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_clear_error_naming_the_config_key(case, semeval, tmp_path):
    hypotheses, params, message = BAD[case]
    train = semeval["train"]
    model = EntailmentClassifier(hypotheses=hypotheses, cache_dir=str(tmp_path), **params, **QUICK)
    with pytest.raises((HypothesisError, ModelLoadError), match=message) as raised:
        model.fit(train, train["label"])
    assert isinstance(raised.value, DataError | ModelLoadError)  # what `python -m stance.train` says in one line
    assert not finetune.store_dir(tmp_path).exists()  # refused before any training


@pytest.mark.slow
def test_a_few_steps_give_probabilities_over_the_labels_also_for_unseen_targets(semeval, tmp_path):
    train = semeval["train"]
    model = EntailmentClassifier(hypotheses=STANCE, max_steps=3, cache_dir=str(tmp_path), **QUICK)
    model.fit(train, train["label"])
    assert list(model.classes_) == LABELS and model.fit_steps_ == 3 and model.weights_key_.startswith("entailment-")
    # A new binary head (MiniLM is not NLI-trained), named in the weights' config.
    assert AutoConfig.from_pretrained(model.weights_path_).id2label == {0: "entailment", 1: "not_entailment"}
    rows = _rows(semeval)
    proba = model.predict_proba(rows)
    assert proba.shape == (len(rows), 3) and (proba > 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert set(model.predict(rows)) <= set(LABELS)
    again = EntailmentClassifier(hypotheses=STANCE, max_steps=3, cache_dir=str(tmp_path), **QUICK)
    assert again.fit(train, train["label"]).fit_cached_ and again.weights_key_ == model.weights_key_
    # The key covers the templates: another wording is other weights.
    reworded = {**STANCE, "NONE": "The author of this text is neutral on {target}."}
    other = EntailmentClassifier(hypotheses=reworded, max_steps=1, cache_dir=str(tmp_path), **QUICK)
    assert other.fit(train, train["label"]).weights_key_ != model.weights_key_


@pytest.mark.slow
def test_an_nli_stage_labels_stance_zero_shot_through_its_entailment_label(semeval, tmp_path):
    nli = {split: to_frame(ds) for split, ds in load_data("nli", "data.limit=40").items()}
    stage = EntailmentClassifier(hypotheses=None, max_steps=3, cache_dir=str(tmp_path), **QUICK)
    stage.fit(nli["train"], nli["train"]["label"])
    assert list(stage.classes_) == ["contradiction", "entailment", "neutral"] == stage.head_
    assert AutoConfig.from_pretrained(stage.weights_path_).id2label[1] == "entailment"
    np.testing.assert_allclose(stage.predict_proba(nli["validation"]).sum(axis=1), 1.0, rtol=1e-9)
    trained = _entries(tmp_path)

    train, rows = semeval["train"], _rows(semeval)
    zero = EntailmentClassifier(
        model=stage.weights_path_, hypotheses=STANCE, zero_shot=True, cache_dir=str(tmp_path), **QUICK
    )
    zero.fit(train, train["label"])
    assert _entries(tmp_path) == trained and not zero.fine_tuned_  # nothing trained
    assert zero.entailment_index_ == 1 and list(zero.classes_) == LABELS
    assert zero.weights_key_ == stage.weights_key_  # its weights travel in a logged model under their own key
    proba = zero.predict_proba(rows)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    # Fitting on no rows is the same zero-shot model.
    empty = EntailmentClassifier(model=stage.weights_path_, hypotheses=STANCE, cache_dir=str(tmp_path), **QUICK)
    np.testing.assert_allclose(empty.fit(train.head(0), train["label"].head(0)).predict_proba(rows), proba)


_PREDICT_SCRIPT = """
import json, sys
import pandas as pd
import stance
frame = pd.read_json(sys.argv[2], orient="records")
print(json.dumps(stance.load_model(sys.argv[1]).predict_proba(frame).tolist()))
"""


@pytest.mark.slow
def test_a_logged_entailment_model_predicts_identically_in_a_fresh_process_with_an_empty_cache(tmp_path, make_cfg):
    cfg = make_cfg(
        "data=semeval2016_task6", "features=identity", "classifier=entailment", "per_target=false", "bootstrap=0",
        "data.limit=40", "classifier.max_steps=3", "classifier.max_length=48", "classifier.batch_size=8",
        "classifier.show_progress=false", f"classifier.cache_dir={tmp_path}/cache",
    )  # fmt: skip
    result = run_experiment(cfg)
    rows = _rows(result.frames)
    expected = result.model.predict_proba(rows)
    assert list(result.model.classes_) == LABELS
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-9)
    (tmp_path / "rows.json").write_text(rows.to_json(orient="records"))
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "empty"), "MLFLOW_TRACKING_URI": cfg.mlflow.tracking_uri}
    done = subprocess.run(
        [sys.executable, "-c", _PREDICT_SCRIPT, f"runs:/{result.run_id}/model", str(tmp_path / "rows.json")],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.array(json.loads(done.stdout.splitlines()[-1])), expected, atol=1e-6)
    assert not (tmp_path / "empty" / "finetuned").exists()  # the weights came from the model, not a cache
    run = MlflowClient(cfg.mlflow.tracking_uri).get_run(result.run_id)
    assert run.data.metrics["finetune/models"] == 1 and run.data.metrics["time/finetune_seconds"] > 0


def _train(store: str, cache: str, *overrides: str) -> str:
    """`python -m stance.train` in a fresh process (the user's command); its output."""
    env = {**os.environ, "STANCE_CACHE": cache}
    done = subprocess.run(
        [sys.executable, "-m", "stance.train", f"mlflow.tracking_uri={store}", "bootstrap=0", *overrides],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_the_stance_stage_starts_from_the_registered_nli_stage_and_labels_unseen_targets_in_a_fresh_process(
    tmp_path, registry, article
):
    store, cache = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "cache")
    quick = ["classifier.max_steps=5", "classifier.max_length=48", "classifier.batch_size=8"]
    _train(store, cache, "experiment=nli_stage", "data.limit=200", *quick)
    client = MlflowClient(store)
    nli = client.get_model_version_by_alias("nli-minilm", "champion")
    _train(store, cache, "experiment=stance_stage", "data.limit=50", *quick)
    stage = client.get_model_version_by_alias("stance-entailment", "champion")
    run = client.get_run(stage.run_id)
    assert run.data.params["classifier.model"] == "models:/nli-minilm@champion"
    assert run.data.metrics["finetune/models"] == 1
    downloaded = list((tmp_path / "cache" / "models" / "mlflow").glob("*/MLmodel"))  # once, kept by model uuid
    assert len(downloaded) == 1 and f"run_id: {nli.run_id}" in downloaded[0].read_text()

    # A fresh process, another folder, an empty cache: the logged model carries its weights and labels a new target.
    (tmp_path / "rows.json").write_text(UNSEEN.to_json(orient="records"))
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "empty"), "MLFLOW_TRACKING_URI": store}
    done = subprocess.run(
        [sys.executable, "-c", _PREDICT_SCRIPT, "models:/stance-entailment@champion", str(tmp_path / "rows.json")],
        env=env, capture_output=True, text=True, cwd=tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    proba = np.array(json.loads(done.stdout.splitlines()[-1]))
    assert proba.shape == (1, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)

    # With no task training at all: the NLI stage as it is, on the news article, toward a target no corpus has.
    zero_shot, trained = ["classifier.zero_shot=true", "mlflow.register=null"], _entries(cache)
    _train(store, cache, "experiment=stance_stage", "data.limit=20", *zero_shot)
    latest = client.search_runs([run.info.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert _entries(cache) == trained and latest.data.params["classifier.zero_shot"] == "True"  # nothing trained
    before, _ = mlflow.get_tracking_uri(), mlflow.set_tracking_uri(store)
    try:  # a local copy, as a user would pass a folder: analyze reads its default models from another store
        model = mlflow.artifacts.download_artifacts(f"runs:/{latest.info.run_id}/model", dst_path=str(tmp_path))
    finally:
        mlflow.set_tracking_uri(before)
    text = article.read_text(encoding="utf-8")
    statements = stance.analyze(text, ["NATO expansion"], stance_model=model, tracking_uri=registry).statements
    assert len(statements) > 5
    assert set(statements["stance: NATO expansion"]) <= set(LABELS), statements.columns


def test_a_stage_that_was_never_logged_is_one_error_naming_the_store(semeval, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    train = semeval["train"]
    model = EntailmentClassifier(model="models:/nli-nowhere@champion", hypotheses=STANCE, cache_dir=str(tmp_path))
    before, _ = mlflow.get_tracking_uri(), mlflow.set_tracking_uri(store)  # as a run of `stance.train` sets it
    try:
        with pytest.raises(
            ModelLoadError, match=f"'models:/nli-nowhere@champion' cannot be read from the MLflow store {store}"
        ):
            model.fit(train, train["label"])
    finally:
        mlflow.set_tracking_uri(before)
