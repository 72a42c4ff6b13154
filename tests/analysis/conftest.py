"""The default models of `stance analyze`, trained once per session on corpus slices into a temporary store."""

from __future__ import annotations

import pytest

from stance.experiment import train_default

# Rows per corpus split for the sliced default models: enough to learn something, quick to fit.
LIMIT = 400


@pytest.fixture(scope="session")
def registry(tmp_path_factory, data_root) -> str:
    """A tracking store holding the default models, trained by their named experiments on slices."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('analyze-registry')}/mlflow.db"
    for kind in ("claim", "stance"):
        train_default(kind, uri, limit=LIMIT)
    return uri
