"""Context features on the real CLEF-2019 debates: windows stay inside a debate and inside the split being scored."""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from stance.config import load_data
from stance.data.schema import to_frame
from stance.data.tasks import Task
from stance.features.context import POSITION_FEATURES, ContextWindow, DocumentPosition, LexicalSignals, Speaker


@functools.cache
def clef() -> dict[str, pd.DataFrame]:
    """CLEF-2019 task 1 as training sees it: whole debates per split, task columns, train rows shuffled in order."""
    task = Task(name="claim", target_column=None, group_column="group", keep_columns=("speaker", "line"))
    frames = {split: task.prepare(to_frame(ds)) for split, ds in load_data("clef2019_checkthat_task1").items()}
    # Shuffled, so that document order can only come from `group` and `line`.
    return {split: frame.sample(frac=1, random_state=0) for split, frame in frames.items()}


def neighbour(frame: pd.DataFrame, offset: int) -> pd.Series:
    """The text of the sentence `offset` lines away in the same debate of `frame` ("" if none), per row."""
    texts = {(g, int(n)): t for g, n, t in zip(frame["group"], frame["line"], frame["text"], strict=True)}
    return pd.Series(
        [texts.get((g, int(n) + offset), "") for g, n in zip(frame["group"], frame["line"], strict=True)],
        index=frame.index,
    )


def test_windows_are_the_neighbouring_lines_of_the_same_debate_and_never_cross_debates():
    test = clef()["test"]
    previous = ContextWindow(before=1).fit_transform(test)["text"]
    following = ContextWindow(before=0, after=1).fit_transform(test)["text"]
    pd.testing.assert_series_equal(previous, neighbour(test, -1), check_names=False)
    pd.testing.assert_series_equal(following, neighbour(test, +1), check_names=False)
    lines = test["line"].astype(int)
    first, last = (
        lines == test.groupby("group")["line"].transform(lambda s: s.astype(int).min()),
        lines.eq(test.groupby("group")["line"].transform(lambda s: s.astype(int).max())),
    )
    assert first.sum() == last.sum() == 7  # each debate's first sentence has no previous one, its last no next one
    assert (previous[first] == "").all() and (following[last] == "").all()
    # Two debates side by side, or one alone: a debate's windows do not change with what else is in the frame.
    one = test[test["group"] == "20181015_60_min"]
    alone = ContextWindow(before=2, after=2).fit_transform(one)["text"]
    together = ContextWindow(before=2, after=2).fit_transform(test)["text"][one.index]
    pd.testing.assert_series_equal(alone, together)


def test_a_sentence_context_in_training_never_includes_test_or_validation_rows():
    frames = clef()
    train, test = frames["train"], frames["test"]
    assert not set(train["group"]) & (set(frames["validation"]["group"]) | set(test["group"]))

    def words(texts: pd.Series) -> set[str]:
        return set(CountVectorizer().fit(texts).vocabulary_)

    # The vocabulary learned from the training windows alone: it is exactly the training sentences' words, and no
    # word that only test or validation sentences use (a leak of a neighbour from another split would bring some).
    model = Pipeline(
        [
            ("window", ContextWindow(before=2, after=2)),
            ("words", ColumnTransformer([("counts", CountVectorizer(), "text")])),
            ("classifier", LogisticRegression(max_iter=200)),
        ]
    ).fit(train, train["label"])
    learned = set(model.named_steps["words"].named_transformers_["counts"].vocabulary_)
    elsewhere = words(pd.concat([test["text"], frames["validation"]["text"]])) - words(train["text"])
    assert len(elsewhere) > 1000 and not learned & elsewhere
    assert learned == words(train["text"])
    # At prediction a test sentence's context comes from the test rows: scoring the test frame alone or with the
    # training rows in it gives the same scores.
    scores = model.predict_proba(test)[:, 1]
    mixed = model.predict_proba(pd.concat([train, test]))[len(train) :, 1]
    np.testing.assert_allclose(scores, mixed)


def test_position_turns_and_speakers_on_a_debate():
    test = clef()["test"]
    debate = test[test["group"] == "20151219_3_dem"].sort_values("line", key=lambda s: s.astype(int))
    features = pd.DataFrame(DocumentPosition().fit_transform(debate), columns=POSITION_FEATURES, index=debate.index)
    assert features["position"].iloc[0] == 0 and features["position"].iloc[-1] == 1
    changes = (debate["speaker"] != debate["speaker"].shift()).to_numpy()
    np.testing.assert_array_equal(features["turn_start"].to_numpy(), changes.astype(float))
    share = debate["speaker"].map(debate["speaker"].value_counts(normalize=True))
    np.testing.assert_allclose(features["speaker_share"], share)
    speaker = Speaker(min_frequency=20).fit(clef()["train"])
    onehot = pd.DataFrame(speaker.transform(debate), columns=speaker.get_feature_names_out(), index=debate.index)
    assert (onehot.sum(axis=1) == 1).all()
    assert onehot.loc[debate["speaker"] == "CLINTON", "speaker_CLINTON"].eq(1).all()
    # O'MALLEY never speaks in training: "other". So does a frame without speakers (an article's narration).
    assert onehot.loc[debate["speaker"] == "O'MALLEY", "speaker_infrequent_sklearn"].eq(1).all()
    assert speaker.transform(debate[["text"]])[:, -1].tolist() == [1.0] * len(debate)


def test_lexical_signals_count_numbers_names_and_comparisons():
    frame = pd.DataFrame({"text": ["We cut taxes by 40% in 2017, more than Obama ever did.", "Thank you."]})
    counts = pd.DataFrame(
        np.expm1(LexicalSignals().fit_transform(frame)), columns=LexicalSignals().get_feature_names_out()
    )
    expected = {"tokens": 12, "capitalised": 1, "digits": 2, "percent": 1, "money": 1, "year": 1, "comparative": 2}
    assert counts.iloc[0][list(expected)].round().tolist() == list(expected.values())
    assert counts.iloc[1].drop("tokens").sum() == 0


def test_context_transformers_clone_and_name_their_errors():
    window = ContextWindow(before=3, after=1, into="target")
    assert clone(window).get_params() == window.get_params()
    with pytest.raises(ValueError, match=re.escape("into must be one of ('text', 'target')")):
        ContextWindow(into="speaker").fit(clef()["test"])
    bad = clef()["test"].head(3).assign(line=["1", "two", "3"])
    with pytest.raises(ValueError, match=r"column 'line': expected a number .* got 'two'"):
        ContextWindow().fit_transform(bad)
    # An article: no debate, no line numbers, no speakers; its rows in order are its one document.
    article = pd.DataFrame({"text": ["First.", "Second.", "Third."]})
    assert ContextWindow(before=1, after=1).fit_transform(article)["text"].tolist() == [
        "Second.",
        "First. Third.",
        "Second.",
    ]
    assert DocumentPosition().fit_transform(article)[:, 0].tolist() == [0, 0.5, 1]
