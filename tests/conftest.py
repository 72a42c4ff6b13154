"""Shared fixtures: the real data root, Hydra configs composed in-process, a temporary MLflow store, and one quick
default model trained once per session for every test that needs a logged model of the default experiment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from stance.config import CONF_MODULE, compose_config
from tests.helpers import CONF

__all__ = ["CONF", "DefaultRun", "compose"]


def compose(*overrides: str, store: Path | str | None = None, hydra: bool = False) -> DictConfig:
    """The config `python -m stance.train OVERRIDES...` would run (`stance.config.compose_config`).

    `store`: a folder whose `mlflow.db` the run tracks into (an explicit `mlflow.tracking_uri=` override still wins).
    `hydra`: with the `hydra` node (launcher, sweeper), which only a Hydra job or `return_hydra_config` composes.
    """
    if store is not None:
        overrides = (f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db", *overrides)
    if not hydra:
        return compose_config(*overrides)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("STANCE_DATA")
    assert root, "Set STANCE_DATA to the corpora folder (make test sets it to ../shared/data)."
    return Path(root)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config with overrides, tracking into a temporary SQLite store."""

    def _make(*overrides: str) -> DictConfig:
        return compose(*overrides, store=tmp_path)

    return _make


@dataclass(frozen=True)
class DefaultRun:
    """A run of the default experiment, logged into its own store."""

    result: Any  # stance.experiment.ExperimentResult: the fitted model, its frames and metrics
    store: Path  # the folder holding mlflow.db (and mlruns/ beside it)
    uri: str  # its tracking URI
    registered: str  # the name its model is registered under, at the config's alias (champion)

    @property
    def run_id(self) -> str:
        return self.result.run_id


# The default experiment on a slice: what a quick logged default model needs, registered as README's examples use it.
DEFAULT_RUN = ["data.limit=300", "features.show_progress=false", "mlflow.register=deployed"]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> DefaultRun:
    """The default experiment (MiniLM, logistic regression per target, bootstrap intervals, logged model) on a 300-row
    SemEval slice, registered as `deployed`: trained once for every test that needs a quick logged default model.

    Tests may add runs of their own to its store (tests/evaluation/test_compare.py does), never change this one.
    """
    from stance.experiment import run_experiment

    store = tmp_path_factory.mktemp("default-run")
    cfg = compose(*DEFAULT_RUN, store=store)
    result = run_experiment(cfg, DEFAULT_RUN)
    return DefaultRun(result=result, store=store, uri=cfg.mlflow.tracking_uri, registered="deployed")


@pytest.fixture(scope="session")
def logged_model(default_run) -> Path:
    """The `default_run`'s model as a local folder, fetched as models:/deployed@champion (README's examples)."""
    import mlflow

    mlflow.set_tracking_uri(default_run.uri)
    return Path(mlflow.artifacts.download_artifacts(f"models:/{default_run.registered}@champion"))


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(name, kb)`: a folder under tmp_path on a file system of `kb` kilobytes (a tmpfs, unmounted after).

    Mounting needs root (CI runs as root); elsewhere the test is skipped and says why.
    """
    import subprocess

    mounted: list[Path] = []

    def make(name: str, kb: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(folder)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a {kb} kB tmpfs ({done.stderr.strip()}): full-disk tests need root")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# Rows per corpus split for the sliced default models of `stance analyze`: enough to learn something, quick to fit.
ANALYZE_LIMIT = 400


@pytest.fixture(scope="session")
def registry(tmp_path_factory, data_root) -> str:
    """A tracking store holding the default models of `stance analyze`, trained by their named experiments on slices."""
    from stance.experiment import train_default

    uri = f"sqlite:///{tmp_path_factory.mktemp('analyze-registry')}/mlflow.db"
    for kind in ("claim", "stance"):
        train_default(kind, uri, limit=ANALYZE_LIMIT)
    return uri


@pytest.fixture(scope="session")
def article(data_root) -> Path:
    """The example news article."""
    return data_root.parent / "examples" / "news_security_guarantees.txt"
