"""Shared fixtures: the real data root, Hydra configs composed in-process, a temporary MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("STANCE_DATA")
    assert root, "Set STANCE_DATA to the corpora folder (make test sets it to ../shared/data)."
    return Path(root)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config with overrides, tracking into a temporary SQLite store."""

    def _make(*overrides: str):
        store = f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=[store, *overrides])

    return _make
