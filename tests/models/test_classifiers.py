"""Every classifier config fits and predicts on a slice of SemEval; class weights tuned on validation."""

from __future__ import annotations

import numpy as np
import pytest

from stance.evaluation.metrics import f_avg
from stance.experiment import train
from tests.helpers import options

pytestmark = pytest.mark.slow

# Classifiers reading the raw frame (features=identity), each with an override (fine-tuning kept to a few steps).
RAW_TEXT = {
    "voting": "seed=13",
    "stacking": "seed=13",
    "cross_encoder": "classifier.max_steps=3",
    "cross_encoder_undersampled": "classifier.estimator.max_steps=3",
    "entailment": "classifier.max_steps=3",
    "llm": "classifier.show_progress=false",
}
# Fewer rows where each costs a language model's forward pass (train rows only pick shots).
LIMITS = {"llm": 24}
# Classifiers that need a running server: their own module starts a real one and trains through the same `train`.
SERVED = {"llm_endpoint"}  # tests/models/test_endpoint.py


@pytest.mark.parametrize("name", [name for name in options("classifier") if name not in SERVED])
def test_classifier_trains_and_scores(make_cfg, name):
    features = "identity" if name in RAW_TEXT else "minilm"
    limit = LIMITS.get(name, 240)
    cfg = make_cfg(
        f"classifier={name}", f"features={features}", f"data.limit={limit}", "per_target=false", "bootstrap=200",
        RAW_TEXT.get(name, "features.show_progress=false"),
    )  # fmt: skip
    result = train(cfg)
    metrics = result.evaluation.metrics
    assert 0.0 <= metrics["test/f_avg"] <= 1.0
    assert metrics["test/f_avg_ci_low"] <= metrics["test/f_avg"] <= metrics["test/f_avg_ci_high"]
    proba = result.model.predict_proba(result.frames["test"])
    assert list(result.model.classes_) == ["AGAINST", "FAVOR", "NONE"] and proba.shape == (limit, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_class_weights_tuned_on_validation_do_not_lower_validation_f_avg(make_cfg):
    base = train(make_cfg("data.limit=300", "features.show_progress=false", "bootstrap=0"))
    tuned = train(make_cfg("data.limit=300", "features.show_progress=false", "bootstrap=0", "tune_class_weights=true"))
    assert tuned.evaluation.metrics["validation/f_avg"] >= base.evaluation.metrics["validation/f_avg"]
    weights = tuned.model.class_weights
    assert set(weights) == {"AGAINST", "FAVOR", "NONE"} and weights["AGAINST"] == 1.0
    validation = tuned.frames["validation"]
    assert f_avg(validation["label"], tuned.model.predict(validation)) == tuned.evaluation.metrics["validation/f_avg"]


def test_a_classifier_whose_model_could_not_be_loaded_is_refused_before_any_work(tmp_path):
    """LightGBM (not even installed here): refused at config time, one message, no MLflow run, nothing trained."""
    import subprocess
    import sys

    store = tmp_path / "mlflow.db"
    command = [
        sys.executable, "-m", "stance.train", "classifier=hgb", "classifier._target_=lightgbm.LGBMClassifier",
        f"mlflow.tracking_uri=sqlite:///{store}", f"hydra.run.dir={tmp_path}/outputs",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: lightgbm.LGBMClassifier is not from scikit-learn or stance: a logged model holding")
    assert "mlflow.log_model=false" in done.stderr and "Traceback" not in done.stderr
    assert not store.exists()


@pytest.mark.parametrize("name", options("classifier"))
def test_every_shipped_classifier_gives_a_loadable_model(make_cfg, name):
    from omegaconf import OmegaConf

    from stance.artifact.trust import TRUSTED_MODULES
    from stance.config import _targets, check_loadable

    cfg = make_cfg(f"classifier={name}", "features=tfidf_minilm")
    targets = list(_targets(OmegaConf.to_container(cfg.classifier, resolve=True)))
    assert targets and all(t.startswith(tuple(f"{m}." for m in TRUSTED_MODULES)) for t in targets), targets
    check_loadable(cfg)  # raises ConfigError for a class stance.load_model would refuse
