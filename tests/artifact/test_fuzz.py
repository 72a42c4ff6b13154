"""Fuzzing the loaded model's input (`stance.load_model` and MLflow's pyfunc): any strings give a valid prediction;
anything else one clear ValueError naming the row and column."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException

import stance

KNOWN_TARGETS = ["Atheism", "Climate Change is a Real Concern", "Feminist Movement", "Hillary Clinton"]
SCRIPTS = st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z"])
TEXTS = st.one_of(
    st.text(max_size=80),
    st.text(SCRIPTS, max_size=80),
    st.sampled_from(["", " ", "\n", "😀" * 3, "Привет мир", "مرحبا بالعالم", "你好，世界", "नमस्ते दुनिया"]),
    st.builds(lambda s, n: s * n, st.text(SCRIPTS, min_size=1, max_size=20), st.integers(300, 1500)),  # very long
)
FRAMES = st.lists(st.tuples(TEXTS, st.one_of(st.sampled_from(KNOWN_TARGETS), TEXTS)), min_size=1, max_size=4).map(
    lambda rows: pd.DataFrame(rows, columns=["text", "target"])
)
BAD_VALUES = st.sampled_from([None, float("nan"), pd.NA, 7, 2.5, b"bytes"])
# Column sets lacking `text` or `target` (or both), with other names beside them.
COLUMNS = st.lists(
    st.one_of(st.sampled_from(["text", "target"]), st.text(min_size=1, max_size=10)),
    min_size=1,
    max_size=3,
    unique=True,
).filter(lambda columns: not {"text", "target"} <= set(columns))
FUZZ = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def served(default_run):
    """The default experiment (MiniLM, one model per target) fitted on a slice and logged (the session's `default_run`),
    loaded back two ways."""
    mlflow.set_tracking_uri(default_run.uri)
    uri = f"runs:/{default_run.run_id}/model"
    return stance.load_model(uri), mlflow.pyfunc.load_model(uri)


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES)
def test_fuzz_any_strings_give_valid_predictions(served, frame):
    model, pyfunc = served
    labels = model.predict(frame)
    proba = model.predict_proba(frame)
    assert len(labels) == len(frame) and set(labels) <= set(model.classes_)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    out = pyfunc.predict(frame)
    assert out["label"].tolist() == [str(label) for label in labels]


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES, bad=BAD_VALUES, column=st.sampled_from(["text", "target"]), data=st.data())
def test_fuzz_a_bad_value_is_one_clear_error_naming_row_and_column(served, frame, bad, column, data):
    model, pyfunc = served
    row = data.draw(st.integers(0, len(frame) - 1))
    frame = frame.astype(object)
    frame.at[row, column] = bad
    with pytest.raises(ValueError, match=rf"row {row}, column '{column}'"):
        model.predict(frame)
    with pytest.raises((ValueError, MlflowException), match=column):
        pyfunc.predict(frame)


@pytest.mark.slow
@FUZZ
@given(frame=FRAMES, columns=COLUMNS)
def test_fuzz_wrong_or_missing_columns_are_named(served, frame, columns):
    model, pyfunc = served
    wrong = pd.DataFrame({column: frame["text"] for column in columns})
    named = "|".join(f"'{column}'" for column in ("text", "target") if column not in columns)
    with pytest.raises(ValueError, match=named):
        model.predict(wrong)
    with pytest.raises((ValueError, MlflowException), match=named):
        pyfunc.predict(wrong)


@pytest.mark.slow
def test_empty_frame_gives_empty_predictions(served):
    model, _ = served
    assert len(model.predict(pd.DataFrame({"text": [], "target": []}, dtype=str))) == 0
