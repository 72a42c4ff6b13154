"""Features of a sentence in its document: neighbouring sentences, speaker, position, and light lexical cues.

A document is a `group` value (a debate, an article); the order inside it is the `line` column. Every transformer
here reads only the frame it is given, so a sentence's context comes from its own split: at prediction time the
test rows alone, never the training rows, and a window never crosses from one document into another. Without a
`group` column the whole frame is one document; without `line` the row order is the document order (an article's
statements in paragraph order); without `speaker` everyone is the same, unknown speaker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

INTO = ("text", "target")


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame({"text": list(X)})


def _strings(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column of strings; a clear error naming the first row that is not one."""
    if column not in frame.columns:
        raise ValueError(f"Input frame lacks column '{column}'; it has {list(frame.columns)}. Give `{column}`.")
    bad = ~frame[column].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if bad.any():
        row = frame.index[bad.argmax()]
        raise ValueError(f"Input row {row}, column '{column}': expected a string, got {frame[column][row]!r}.")
    return frame[column].to_numpy(dtype=object)


def document_order(
    frame: pd.DataFrame, group_column: str = "group", order_column: str = "line"
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions sorted by document then order (ties in row order), and each sorted row's document code."""
    n = len(frame)
    groups = pd.factorize(frame[group_column].astype(str))[0] if group_column in frame else np.zeros(n, dtype=int)
    if order_column in frame:
        order = pd.to_numeric(frame[order_column], errors="coerce").to_numpy(dtype=float)
        if np.isnan(order).any():
            row = frame.index[np.isnan(order).argmax()]
            raise ValueError(
                f"Input row {row}, column '{order_column}': expected a number (the sentence's order in its "
                f"document), got {frame[order_column][row]!r}."
            )
    else:
        order = np.arange(n, dtype=float)
    permutation = np.lexsort((np.arange(n), order, groups))
    return permutation, groups[permutation]


def _starts_and_ends(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted document codes: the first and one-past-last sorted position of each row's document."""
    boundaries = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(codes)]])
    which = np.searchsorted(starts, np.arange(len(codes)), side="right") - 1
    return starts[which], ends[which]


class ContextWindow(TransformerMixin, BaseEstimator):
    """The frame with the `before` previous and `after` next sentences of each row's document, joined, as a column.

    into="text" replaces `text` by the window (to embed the context alone, e.g. followed by a `SentenceEmbedder`);
    into="target" puts the window into `target` and keeps `text` (a (context, sentence) pair for a cross-encoder).
    A window stops at its document's first and last sentence; a sentence with no neighbours gets "".
    """

    def __init__(
        self,
        before: int = 1,
        after: int = 0,
        into: str = "text",
        separator: str = " ",
        group_column: str = "group",
        order_column: str = "line",
    ):
        self.before = before
        self.after = after
        self.into = into
        self.separator = separator
        self.group_column = group_column
        self.order_column = order_column

    def fit(self, X: pd.DataFrame, y: Any = None) -> ContextWindow:
        """Check the settings (nothing is learned: the context of a row comes from the frame it is in)."""
        if self.into not in INTO:
            raise ValueError(f"ContextWindow: into must be one of {INTO}, got {self.into!r}.")
        if min(self.before, self.after) < 0 or self.before + self.after == 0:
            raise ValueError(
                f"ContextWindow: before and after must be >= 0 and not both 0; got {self.before} and {self.after}."
            )
        return self

    def windows(self, X: pd.DataFrame) -> list[str]:
        """Each row's window text, in the frame's row order."""
        frame = _frame(X)
        texts = _strings(frame, "text")
        permutation, codes = document_order(frame, self.group_column, self.order_column)
        starts, ends = _starts_and_ends(codes)
        ordered = texts[permutation]
        out = np.empty(len(frame), dtype=object)
        for position, row in enumerate(permutation):
            previous = ordered[max(starts[position], position - self.before) : position]
            following = ordered[position + 1 : min(ends[position], position + 1 + self.after)]
            out[row] = self.separator.join([*previous, *following])
        return out.tolist()

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """A copy of the frame with the window in `into` (`text` or `target`)."""
        frame = _frame(X)
        return frame.assign(**{self.into: self.windows(frame)})


POSITION_FEATURES = ("position", "turn_start", "turn_end", "turn_index", "turn_length", "speaker_share")


def _speakers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Speaker names upper-cased and stripped; "" where the column is missing or a cell is empty (narration)."""
    if column not in frame:
        return np.full(len(frame), "", dtype=object)
    return frame[column].map(lambda v: v.strip().upper() if isinstance(v, str) else "").to_numpy(dtype=object)


class DocumentPosition(TransformerMixin, BaseEstimator):
    """Where a sentence falls: relative position in its document, its speaker's turn, and that speaker's share.

    Columns (`POSITION_FEATURES`): position (0 first .. 1 last), turn_start / turn_end (1 if the speaker changes
    before / after it), turn_index and turn_length (log1p of the sentence's index within its turn and of the turn's
    length), speaker_share (the fraction of the document's sentences its speaker says).
    """

    def __init__(self, group_column: str = "group", order_column: str = "line", speaker_column: str = "speaker"):
        self.group_column = group_column
        self.order_column = order_column
        self.speaker_column = speaker_column

    def fit(self, X: pd.DataFrame, y: Any = None) -> DocumentPosition:
        """Nothing to learn; returns self."""
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """One row of `POSITION_FEATURES` per sentence."""
        frame = _frame(X)
        permutation, codes = document_order(frame, self.group_column, self.order_column)
        starts, ends = _starts_and_ends(codes)
        speakers = _speakers(frame, self.speaker_column)[permutation]
        n = len(frame)
        index = np.arange(n)
        size = ends - starts
        position = np.divide(index - starts, size - 1, out=np.zeros(n), where=size > 1)
        new_turn = (index == starts) | np.concatenate([[True], speakers[1:] != speakers[:-1]])
        turn_id = np.cumsum(new_turn) - 1
        turn_first = np.flatnonzero(new_turn)[turn_id]
        turn_length = np.bincount(turn_id)[turn_id]
        turn_start = new_turn.astype(float)
        turn_end = np.concatenate([new_turn[1:], [True]]).astype(float)
        keys = pd.Series(codes.astype(str)) + "\x00" + pd.Series(speakers.astype(str))
        share = keys.map(keys.value_counts()).to_numpy(dtype=float) / size
        features = np.column_stack(
            [position, turn_start, turn_end, np.log1p(index - turn_first), np.log1p(turn_length), share]
        )
        out = np.empty_like(features)
        out[permutation] = features
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """`POSITION_FEATURES`."""
        return np.asarray(POSITION_FEATURES, dtype=object)


class Speaker(TransformerMixin, BaseEstimator):
    """One-hot speaker: speakers with at least `min_frequency` training sentences, the rest as one "other" column.

    Names are upper-cased and stripped; a missing column or an empty cell is the speaker "" (unseen, so "other").
    Delegates to `OneHotEncoder(handle_unknown="infrequent_if_exist")`: unseen speakers land in "other".
    """

    def __init__(self, min_frequency: int = 20, column: str = "speaker"):
        self.min_frequency = min_frequency
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any = None) -> Speaker:
        """Learn the speakers seen often enough in training."""
        from sklearn.preprocessing import OneHotEncoder

        speakers = _speakers(_frame(X), self.column)
        # The "" speaker is kept rare in fit, so that "other" exists even when every training speaker is frequent.
        values = np.concatenate([speakers, [""]]).reshape(-1, 1)
        self.encoder_ = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency, sparse_output=False
        ).fit(values)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Indicator columns: one per frequent training speaker, then "other"."""
        return self.encoder_.transform(_speakers(_frame(X), self.column).reshape(-1, 1))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The speaker names, and `infrequent` for the other column."""
        return np.asarray([str(c) for c in self.encoder_.get_feature_names_out([self.column])], dtype=object)


# Light cues of checkable content, after the CLEF winners' feature sets: numbers, quantities, names, comparisons.
_NUMBER_WORDS = (
    r"hundred|thousand|million|billion|trillion|percent|half|twice|double|tripled?|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
)
LEXICAL_PATTERNS = {
    "digits": r"\d+(?:[.,]\d+)*",
    "number_words": rf"\b(?:{_NUMBER_WORDS})\b",
    "percent": r"%|\bpercent\b|\bper cent\b",
    "money": r"\$|\bdollars?\b|\bcents?\b|\btaxe?s?\b|\bbudget\b|\bdebt\b",
    "year": r"\b(?:1[89]|20)\d\d\b",
    "comparative": r"\b(?:more|less|fewer|better|worse|higher|lower|bigger|smaller|larger|greater|than)\b",
    "superlative": (
        r"\b(?:most|least|best|worst|largest|biggest|highest|lowest|greatest|record|ever|never|first|only|"
        r"\w+est)\b"
    ),
    "change": r"\b(?:increas|decreas|rais|cut|grow|grew|fell|fall|rose|rise|doubl|los[te]|creat|kill)\w*",
    "first_person": r"\b(?:i|me|my|i'm|i've|i'll)\b",
    "future": r"\b(?:will|going to|gonna|would|'ll)\b",
    "question": r"\?",
}
LEXICAL_FEATURES = ("tokens", "capitalised", *LEXICAL_PATTERNS)


class LexicalSignals(TransformerMixin, BaseEstimator):
    """Counts (log1p) of light lexical cues per `text`: tokens, capitalised non-initial tokens, `LEXICAL_PATTERNS`."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> LexicalSignals:
        """Nothing to learn; returns self."""
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """One row of `LEXICAL_FEATURES` per text."""
        texts = pd.Series(_strings(_frame(X), "text"), dtype=object)
        lowered = texts.str.lower()
        columns = [
            texts.str.count(r"\S+"),
            # Proper names stand in for named entities: capitalised tokens other than the first and "I".
            texts.map(lambda t: sum(1 for w in t.split()[1:] if w[:1].isupper() and w.strip(".,;:!?") != "I")),
            *(lowered.str.count(pattern) for pattern in LEXICAL_PATTERNS.values()),
        ]
        return np.log1p(np.column_stack([c.to_numpy(dtype=float) for c in columns]))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """`LEXICAL_FEATURES`."""
        return np.asarray(LEXICAL_FEATURES, dtype=object)
