"""Every config in every group composes and instantiates."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from sklearn.base import BaseEstimator

from stance.config import build
from stance.data.schema import DataError
from tests.helpers import options


@pytest.mark.parametrize("name", options("features"))
def test_features_compose_and_instantiate(make_cfg, name):
    assert isinstance(instantiate(make_cfg(f"features={name}").features), BaseEstimator)


@pytest.mark.parametrize("name", options("classifier"))
def test_classifiers_compose_and_instantiate(make_cfg, name):
    classifier = instantiate(make_cfg(f"classifier={name}").classifier)
    assert hasattr(classifier, "fit") and hasattr(classifier, "predict_proba")


# Configs that need a user's value: a real file for `files`; `hub` needs the network, so offline it must fail clearly.
USER_VALUES = {
    "files": [
        "data.paths=${oc.env:STANCE_DATA}/multitarget_stance_election2016/multi_target_stance.csv",
        "data.columns={text: Tweet}",
        "data.targets={Target 1: Stance 1, Target 2: Stance 2}",
        "data.split_column=Test/Train/Dev",
        "data.split_map={Train: train, Dev: validation, Test: test}",
    ],
    "hub": ["data.path=nobody/no-such-dataset"],
}


@pytest.mark.parametrize("name", options("data"))
def test_data_compose_and_instantiate(make_cfg, name, monkeypatch):
    cfg = make_cfg(f"data={name}", *USER_VALUES.get(name, ["data.limit=50"]))
    if name == "hub":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(DataError, match="Cannot load Hub dataset"):
            build(cfg.data)
        return
    data = build(cfg.data)
    assert {"text", "target", "label"} <= set(data["test"].column_names)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiments_compose_and_instantiate(make_cfg, name):
    cfg = make_cfg(f"experiment={name}")
    assert cfg.mlflow.experiment
    assert isinstance(build(cfg.features), BaseEstimator) and hasattr(build(cfg.classifier), "fit")
