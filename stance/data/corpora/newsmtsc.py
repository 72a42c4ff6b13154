"""NewsMTSC: sentiment of a news sentence toward a person it mentions (not stance toward a claim)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    DataError,
    carve_groups,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    parse_json,
    read_lines,
    require_fields,
)

_NEWSMTSC_FILES = ("train", "devtest_mt", "devtest_rw")
_NEWSMTSC_LABELS = ["2.0", "4.0", "6.0"]


@reader
def newsmtsc(
    root: str | None = None,
    test_split: str = "devtest_rw",
    validation_split: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """NewsMTSC: sentiment of a news sentence towards a person mention (target); one row per target mention.

    test = `test_split` (devtest_rw by default). Validation = the file `validation_split` (e.g. devtest_mt) or, if
    null, whole sentences carved from train (`validation_size`; grouped by sentence text, so the 19 duplicated train
    sentences and multi-target sentences stay on one side). Raw polarity 2.0/4.0/6.0 = negative/neutral/positive.
    `id` is the target's `Input.gid`, `group` the sentence's `primary_gid`.
    """
    if (
        test_split not in _NEWSMTSC_FILES[1:]
        or validation_split not in (None, *_NEWSMTSC_FILES[1:])
        or (test_split == validation_split)
    ):
        raise DataError(
            f"newsmtsc: test_split={test_split!r}, validation_split={validation_split!r}; each must be one of "
            f"{list(_NEWSMTSC_FILES[1:])} (validation_split may be null: carve from train), and they must differ."
        )
    paths = dict(
        zip(_NEWSMTSC_FILES, corpus_files(root, "newsmtsc", [f"{n}.jsonl" for n in _NEWSMTSC_FILES]), strict=True)
    )
    train = _read_newsmtsc(paths["train"])
    if validation_split is None:
        train, validation = carve_groups(train, validation_size, seed, by="text")
    else:
        validation = _read_newsmtsc(paths[validation_split])
    splits = {"train": train, "validation": validation, "test": _read_newsmtsc(paths[test_split])}
    return finish_corpus(splits, _NEWSMTSC_LABELS, labels, label_map, limit, seed)


def _read_newsmtsc(path: Path) -> pd.DataFrame:
    records = [
        {**parse_json(line, path, number), "line": number}
        for number, line in enumerate(read_lines(path), start=1)
        if line.strip()
    ]
    sentences = pd.DataFrame(records)
    require_fields(sentences, ["sentence_normalized", "primary_gid", "targets"], path)
    untargeted = sentences["targets"].map(lambda targets: not targets)
    if untargeted.any():
        raise DataError(f"{path}, line {sentences['line'][untargeted].iloc[0]}: a sentence without targets.")
    mentions = sentences.explode("targets", ignore_index=True)
    details = pd.json_normalize(mentions["targets"].tolist())
    require_fields(details, ["Input.gid", "mention", "polarity"], path)
    frame = pd.DataFrame(
        {
            "id": details["Input.gid"].astype(str),
            "text": mentions["sentence_normalized"],
            "target": details["mention"],
            "group": mentions["primary_gid"].astype(str),
            "label": details["polarity"].astype(str),
            "line": mentions["line"].astype(str),
        }
    )
    check_labels(frame, "label", _NEWSMTSC_LABELS, path, key="line", field="polarity")
    check_texts(frame, path, key="line")
    return frame.drop(columns="line")
