"""CLEF-2019 CheckThat! task 1: check-worthy sentences of political debates (a claim task, no target)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    DataError,
    carve_groups,
    carve_validation,
    check_labels,
    check_texts,
    data_root,
    finish_corpus,
    read_table,
)

# Folder -> number of debate files SOURCE.md lists, so a missing file cannot silently shrink a split.
_CLEF_FOLDERS = {"training": 19, "test_annotated": 7}
_CLEF_LABELS = ["0", "1"]


@reader
def clef2019_checkthat_task1(
    root: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
    validation_by: str = "sentence",
) -> DatasetDict:
    """CLEF-2019 CheckThat! task 1: is a debate sentence check-worthy (1) or not (0); test = test_annotated.

    target is "" (the task has no target). `speaker` is kept; `group` is the debate (file name without .tsv), needed
    for the official per-debate MAP; `line` is the sentence's line number in its debate (its order); `id` is
    debate/line. validation_by="sentence" carves `validation_size` of the training sentences, stratified by label;
    "debate" carves that fraction of whole training debates, so that every split holds complete debates and a
    sentence's neighbours are in its own split (needed by context features). validation_size=0 trains on all 19
    training debates, without a validation split (the final fit of a configuration chosen on validation).
    """
    train, test = (_read_clef_folder(root, folder, count) for folder, count in _CLEF_FOLDERS.items())
    if validation_by not in ("sentence", "debate"):
        raise DataError(f"data.validation_by must be 'sentence' or 'debate', got {validation_by!r}.")
    if not validation_size:
        return finish_corpus({"train": train, "test": test}, _CLEF_LABELS, labels, label_map, limit, seed)
    carve = carve_validation if validation_by == "sentence" else carve_groups
    fit, val = carve(train, validation_size, seed)
    return finish_corpus({"train": fit, "validation": val, "test": test}, _CLEF_LABELS, labels, label_map, limit, seed)


def _read_clef_folder(root: str | None, folder: str, count: int) -> pd.DataFrame:
    path = data_root(root) / "clef2019_checkthat_task1" / folder
    files = sorted(path.glob("*.tsv"))
    if len(files) != count:
        raise DataError(f"{path}: expected {count} .tsv files (one per debate, see SOURCE.md), found {len(files)}.")
    return pd.concat([_read_clef(file) for file in files], ignore_index=True)


def _read_clef(path: Path) -> pd.DataFrame:
    columns = ["line_number", "speaker", "text", "label"]
    raw = read_table(path, columns, encoding="utf-8", sep="\t", header=None, names=columns, quoting=csv.QUOTE_NONE)
    check_labels(raw, "label", _CLEF_LABELS, path, first_row=1)
    check_texts(raw, path, first_row=1)
    line = pd.to_numeric(raw["line_number"], errors="coerce")
    if line.isna().any():
        row = int(line.isna().to_numpy().argmax())
        raise DataError(
            f"{path}, row {row + 1}: line_number {raw['line_number'][row]!r} is not a whole number; the first column "
            "of a CLEF-2019 task 1 file numbers the debate's sentences in order."
        )
    return pd.DataFrame(
        {
            "id": path.stem + "/" + raw["line_number"],
            "text": raw["text"],
            "target": "",
            "speaker": raw["speaker"],
            "group": path.stem,
            "line": line.astype(int),
            "label": raw["label"],
        }
    )
