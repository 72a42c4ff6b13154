"""Topics and claims on the same machinery: task=claim ranks sentences, task=topic handles label sets, discovery."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

import stance
from stance.analysis.topics import discover
from stance.data.schema import to_frame
from stance.data.tasks import Task
from stance.evaluation.metrics import ranking_scores
from stance.experiment import run_experiment

pytestmark = pytest.mark.slow

SENTENCES = pd.DataFrame(
    {
        "text": [
            "Unemployment fell to 4.1 percent last year, the lowest in a decade.",
            "Thank you all for coming tonight.",
            "We have cut taxes for 30 million families.",
            "Well, let me just say this.",
        ],
        "target": ["", "", "", ""],
    }
)


def test_ranking_metrics_by_hand():
    frame = pd.DataFrame(
        {"group": ["a"] * 4 + ["b"] * 2, "relevant": [1, 0, 1, 0, 0, 1], "score": [0.9, 0.8, 0.7, 0.1, 0.9, 0.2]}
    )
    metrics, table = ranking_scores(frame, ks=(1, 2))
    # debate a: hits at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2; debate b: hit at rank 2 -> AP = 1/2.
    assert metrics["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert metrics["p_at_1"] == pytest.approx((1 + 0) / 2) and metrics["p_at_2"] == pytest.approx((0.5 + 0.5) / 2)


def test_claim_task_end_to_end_and_a_loaded_model_ranks_new_sentences(make_cfg):
    cfg = make_cfg("task=claim", "data=clef2019_checkthat_task1", "data.limit=1500", "features.show_progress=false")
    result = run_experiment(cfg, ["task=claim", "data=clef2019_checkthat_task1"])
    metrics = mlflow.tracking.MlflowClient(cfg.mlflow.tracking_uri).get_run(result.run_id).data.metrics
    for name in ("map", "p_at_5", "p_at_10", "p_at_20", "p_at_50", "f1_positive", "pr_auc"):
        assert 0.0 <= metrics[f"test/{name}"] <= 1.0
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    scored = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(SENTENCES)
    assert {"label", "score", "proba_1"} <= set(scored.columns)
    ranked = SENTENCES.assign(score=scored["score"]).sort_values("score", ascending=False)
    assert set(ranked["text"].head(2)) != set(SENTENCES["text"].iloc[[1, 3]]), "small talk ranked above claims"
    model = stance.load_model(f"runs:/{result.run_id}/model")
    np.testing.assert_allclose(model.predict_proba(SENTENCES)[:, 1], scored["score"], rtol=1e-6)


def test_claims_in_context_log_a_model_that_scores_frames_with_or_without_context_columns(make_cfg):
    cfg = make_cfg("experiment=clef_claims_context", "data.limit=300", "bootstrap=50")
    result = run_experiment(cfg, ["experiment=clef_claims_context"])
    metrics = result.evaluation.metrics
    assert metrics["test/map_ci_low"] <= metrics["test/map"] <= metrics["test/map_ci_high"]
    assert {"speaker", "line", "group"} <= set(result.frames["test"].columns)
    model = stance.load_model(f"runs:/{result.run_id}/model")  # skops: the context transformers are trusted types
    test = result.frames["test"]
    np.testing.assert_allclose(model.predict_proba(test)[:, 1], result.evaluation.predictions["test"]["score"])
    # Without group, line and speaker (optional inputs of the pyfunc) the frame is one document in row order.
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    np.testing.assert_allclose(pyfunc.predict(SENTENCES)["score"], model.predict_proba(SENTENCES)[:, 1], rtol=1e-6)
    # With them, the pyfunc passes them on: the same scores as the evaluation.
    columns = ["text", "target", "group", "speaker", "line"]
    np.testing.assert_allclose(pyfunc.predict(test[columns])["score"], model.predict_proba(test)[:, 1], rtol=1e-6)


def test_multilabel_topics_on_perspectrum(make_cfg):
    cfg = make_cfg("task=topic", "data=perspectrum", "data.limit=1500", "features.show_progress=false")
    result = run_experiment(cfg, ["task=topic", "data=perspectrum"])
    assert result.task.multilabel and result.task.label_column == "topic"
    metrics = result.evaluation.metrics
    assert {"test/micro_f1", "test/macro_f1", "test/jaccard"} <= set(metrics)
    assert set(result.model.thresholds) == set(result.model.classes_)
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    out = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(SENTENCES.head(2))
    assert "labels" in out.columns and all(isinstance(v, str) for v in out["labels"])


def test_task_names_missing_columns():
    with pytest.raises(ValueError, match="task 'claim' needs column"):
        Task(name="claim", target_column=None, group_column="debate").prepare(
            pd.DataFrame({"text": ["a"], "label": ["1"]})
        )


def test_topic_discovery_is_deterministic(data_root):
    from stance.data.corpora.ag_news import ag_news_test

    texts = to_frame(ag_news_test(root=str(data_root), limit=300)["test"])["text"].tolist()
    first, table, _ = discover(texts, n_clusters=5, seed=7)
    second, table2, _ = discover(texts, n_clusters=5, seed=7)
    assert (first == second).all() and table.equals(table2)
    assert table["size"].sum() == 300 and table["keywords"].str.len().gt(0).all()
