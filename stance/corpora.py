"""One small reader per corpus under the data root, each returning a DatasetDict in the shared schema."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data import (
    STANCE_LABELS,
    DataError,
    carve_validation,
    check_labels,
    check_texts,
    corpus_files,
    finish,
    read_table,
)


def semeval2016_task6(
    root: str | None = None,
    task: str = "A",
    validation_size: float = 0.1,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """SemEval-2016 Task 6 stance: train = trial + training (minus validation), test = test A; task B is test only."""
    names = {
        "A": [
            "trialdata-all-annotations.txt",
            "trainingdata-all-annotations.txt",
            "testdata-taskA-all-annotations.txt",
        ],
        "B": ["testdata-taskB-all-annotations.txt"],
    }
    if task not in names:
        raise DataError(f"semeval2016_task6: unknown task {task!r}; choose 'A' or 'B'.")
    paths = corpus_files(root, "semeval2016_task6", names[task])
    frames = [_read_semeval(p) for p in paths]
    if task == "B":
        return finish({"test": frames[0]}, STANCE_LABELS, limit=limit, seed=seed)
    fit, val = carve_validation(pd.concat(frames[:2], ignore_index=True), validation_size, seed)
    splits = {"train": fit, "validation": val, "test": frames[2]}
    return finish(splits, STANCE_LABELS, limit=limit, seed=seed)


def _read_semeval(path: Path) -> pd.DataFrame:
    # The training file is cp1252 (curly quotes), the others ASCII, which cp1252 also decodes.
    raw = read_table(path, ["ID", "Target", "Tweet", "Stance"], encoding="cp1252", sep="\t", quoting=csv.QUOTE_NONE)
    check_labels(raw, "Stance", STANCE_LABELS, path)
    text = raw["Tweet"].str.replace("#SemST", "", regex=False).str.strip()
    frame = pd.DataFrame({"id": raw["ID"], "text": text, "target": raw["Target"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame
