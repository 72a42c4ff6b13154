"""COVID-19-Stance: tweets toward four COVID-19 targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.corpora.leaks import drop_test_leaks
from stance.data.registry import reader
from stance.data.schema import (
    STANCE_LABELS,
    Report,
    check_constant,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    read_table,
)

# File name part -> the target as the paper words it (the files say e.g. "fauci").
COVID19_TARGETS = {
    "face_masks": "Wearing a Face Mask",
    "fauci": "Anthony S. Fauci, M.D.",
    "school_closures": "Keeping Schools Closed",
    "stay_at_home_orders": "Stay at Home Orders",
}


@reader
def covid19_stance(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """COVID-19-Stance tweets on four targets (hydrated copy); official train/val/test, FAVOR/AGAINST/NONE.

    target is the paper's wording ("Wearing a Face Mask"), `topic` the file's short name ("face_masks"), `id` the
    tweet id. Opinion-towards and sentiment annotations are not read.
    """
    names = [f"{key}_{split}.csv" for split in ("train", "val", "test") for key in COVID19_TARGETS]
    paths = iter(corpus_files(root, "covid19_stance", names))
    splits = {
        split: pd.concat([_read_covid19(next(paths), key) for key in COVID19_TARGETS], ignore_index=True)
        for split in ("train", "validation", "test")
    }
    report = Report()
    splits = drop_test_leaks(splits, "covid19_stance", report)
    return finish_corpus(splits, STANCE_LABELS, labels, label_map, limit, seed, report)


def _read_covid19(path: Path, key: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance", "Tweet Id"], encoding="utf-8")
    check_labels(raw, "Stance", STANCE_LABELS, path)
    check_constant(raw, "Target", key, path)
    frame = pd.DataFrame(
        {
            "id": raw["Tweet Id"],
            "text": raw["Tweet"],
            "target": COVID19_TARGETS[key],
            "topic": raw["Target"],
            "label": raw["Stance"],
        }
    )
    check_texts(frame, path)
    return frame
