"""VAST dev and test: stance toward many targets, for zero-shot evaluation only (no training data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import DataError, check_labels, check_texts, corpus_files, finish_corpus, read_table

_VAST_FILES = {"validation": "vast_dev.csv", "test": "vast_test.csv"}
_VAST_LABELS = ["0", "1", "2"]


@reader
def vast_devtest(
    root: str | None = None,
    splits: Sequence[str] = ("validation", "test"),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """VAST dev (as `validation`) and test for zero-shot evaluation; there is no training data, asking for it fails.

    Labels 0/1/2 = con/pro/neutral. `seen` is "1" for topics in VAST's (absent) training set, "0" for zero-shot.
    The exact duplicate rows (35 dev, 78 test) are kept, matching the official row counts.
    """
    if "train" in splits:
        raise DataError(
            "vast_devtest has no train split: the VAST training file could not be obtained (see SOURCE.md). "
            "Use it for evaluation only (data.splits=[validation,test]) and train on another corpus."
        )
    unknown = [s for s in splits if s not in _VAST_FILES]
    if unknown:
        raise DataError(f"vast_devtest: unknown split(s) {unknown}; choose from {list(_VAST_FILES)}.")
    paths = corpus_files(root, "vast_devtest", [_VAST_FILES[s] for s in splits])
    frames = {split: _read_vast(path) for split, path in zip(splits, paths, strict=True)}
    return finish_corpus(frames, _VAST_LABELS, labels, label_map, limit, seed)


def _read_vast(path: Path) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance", "seen?"], encoding="utf-8")
    check_labels(raw, "Stance", _VAST_LABELS, path)
    frame = pd.DataFrame({"text": raw["Tweet"], "target": raw["Target"], "seen": raw["seen?"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame
