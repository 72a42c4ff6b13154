"""A classifier without `predict_proba` (issue 29: LinearSVC failed after a full fit) is refused before any work."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from stance.config import ConfigError
from stance.experiment import prepare
from tests.helpers import runs

REFUSAL = (
    "error: sklearn.svm.LinearSVC has no predict_proba, which evaluation and the logged model need (class "
    "probabilities). Calibrate it: `classifier=svm` is LinearSVC so wrapped; for another, its config's `_target_: "
    "sklearn.calibration.CalibratedClassifierCV` with `estimator: {_target_: sklearn.svm.LinearSVC}` (and its "
    "parameters under `estimator`); docs/experiments.md, 'A classifier without predict_proba'."
)


@pytest.mark.parametrize(
    "overrides",
    [["classifier._target_=sklearn.svm.LinearSVC"], ["classifier=linsvc"]],
    ids=["override", "own-config"],
)
def test_linear_svc_is_refused_in_one_line_before_any_data_or_encoding(tmp_path, overrides):
    (tmp_path / "conf" / "classifier").mkdir(parents=True)  # a researcher's own conf/ beside their data
    (tmp_path / "conf" / "classifier" / "linsvc.yaml").write_text("_target_: sklearn.svm.LinearSVC\nC: 0.5\n")
    store, cache = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "cache"
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    command = [sys.executable, "-m", "stance.train", f"mlflow.tracking_uri={store}", *overrides]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    seconds = time.monotonic() - start
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == REFUSAL and "Traceback" not in done.stderr
    assert not cache.exists(), "nothing was embedded (the encoder never ran)"
    assert seconds < 30, f"refused after {seconds:.1f} s: it must come before the data and the encoder"
    assert runs(store) == [], "no MLflow run for a configuration error"


def test_the_check_comes_before_the_data_is_read(make_cfg):
    """`prepare` refuses the classifier even when the data config could not be read at all."""
    cfg = make_cfg("classifier._target_=sklearn.svm.LinearSVC", "data=files", "data.paths=/no/such/file.csv")
    with pytest.raises(ConfigError, match=r"^sklearn\.svm\.LinearSVC has no predict_proba"):
        prepare(cfg)
