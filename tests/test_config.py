"""Every config in every group composes and instantiates."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from sklearn.base import BaseEstimator

from tests.conftest import CONF


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("name", _options("features"))
def test_features_compose_and_instantiate(make_cfg, name):
    assert isinstance(instantiate(make_cfg(f"features={name}").features), BaseEstimator)


@pytest.mark.parametrize("name", _options("classifier"))
def test_classifiers_compose_and_instantiate(make_cfg, name):
    classifier = instantiate(make_cfg(f"classifier={name}").classifier)
    assert hasattr(classifier, "fit") and hasattr(classifier, "predict_proba")


@pytest.mark.parametrize("name", _options("data"))
def test_data_compose_and_instantiate(make_cfg, name):
    data = instantiate(make_cfg(f"data={name}", "data.limit=50").data)
    assert {"text", "target", "label"} <= set(data["test"].column_names)
