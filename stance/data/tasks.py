"""A task is a choice of input and label columns: stance toward a target, topic (single- or multi-label), claim, or
NLI (premise as `text`, hypothesis as `target`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from stance.data.schema import DataError

TASKS = ("stance", "topic", "claim", "nli")


@dataclass
class Task:
    """Which columns are the input and the label, and how labels are read.

    `target_column=None` means the task has no target: the model sees `target` = "" for every row.
    `label_column=None` picks `topic` when the data has that column (topic tasks) and `label` otherwise.
    `multilabel` reads labels joined by `separator` (None: multi-label when any label contains it).
    `dedupe` keeps one row per input text (e.g. PERSPECTRUM's claims, which repeat once per perspective).
    `positive_label` makes a binary task a ranking one (claims): the score is that label's probability, ranked
    within each `group_column` value.
    `keep_columns` are passed through unchanged for features that read them (e.g. `speaker` and `line` for the
    context of a debate sentence).
    """

    name: str = "stance"
    text_column: str = "text"
    target_column: str | None = "target"
    label_column: str | None = "label"
    multilabel: bool | None = False
    separator: str = "|"
    dedupe: bool = False
    positive_label: str | None = None
    group_column: str | None = None
    keep_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"task.name must be one of {TASKS}, got {self.name!r}")

    def prepare(self, frame: pd.DataFrame, where: str = "data") -> pd.DataFrame:
        """The frame a model consumes: `text`, `target`, `label` (a list for multi-label), plus `group` if any."""
        # Resolved on the first split seen (train), then fixed for the others.
        if self.label_column is None:
            has_topics = "topic" in frame and frame["topic"].astype(str).str.strip().any()
            self.label_column = "topic" if has_topics else "label"
        if self.multilabel is None:
            self.multilabel = bool(frame[self.label_column].astype(str).str.contains(self.separator, regex=False).any())
        named = (self.text_column, self.target_column, self.label_column, self.group_column, *self.keep_columns)
        needed = [c for c in named if c]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: task '{self.name}' needs column(s) {missing}; the data has {list(frame)}.")
        out = pd.DataFrame(
            {
                "text": frame[self.text_column],
                "target": frame[self.target_column] if self.target_column else "",
                "label": frame[self.label_column].astype(str),
            }
        )
        if self.group_column:
            out["group"] = frame[self.group_column].astype(str)
        for column in self.keep_columns:
            out[column] = frame[column]
        if self.dedupe:
            out = out.drop_duplicates("text")
        if self.multilabel:
            out["label"] = out["label"].map(lambda v: [t for t in v.split(self.separator) if t])
        return out.reset_index(drop=True)

    def describe(self) -> dict[str, Any]:
        """What a logged model needs to know to shape its output."""
        return {"task": self.name, "multilabel": self.multilabel, "positive_label": self.positive_label}
