"""SemEval-2016 Task 6 stance tweets, and TweetEval stance: the same tweets in TweetEval's own splits."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    STANCE_LABELS,
    DataError,
    carve_validation,
    check_labels,
    check_texts,
    corpus_files,
    finish,
    finish_corpus,
    read_lines,
    read_table,
)


@reader
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


# Folder -> the SemEval-2016 target name (TweetEval has no target column).
TWEETEVAL_TARGETS = {
    "abortion": "Legalization of Abortion",
    "atheism": "Atheism",
    "climate": "Climate Change is a Real Concern",
    "feminist": "Feminist Movement",
    "hillary": "Hillary Clinton",
}
_TWEETEVAL_SPLITS = {"train": "train", "validation": "val", "test": "test"}


@reader
def tweeteval_stance(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """TweetEval stance: its own train/val/test, one folder per target, label codes named by `mapping.txt`.

    These are the SAME tweets as `semeval2016_task6` (train + val = the SemEval training data, test = test A): never
    train on one and evaluate on the other. `#SemST` is removed as in the SemEval reader.
    """
    files = [
        f"{d}/{s}_{kind}.txt"
        for d in TWEETEVAL_TARGETS
        for s in _TWEETEVAL_SPLITS.values()
        for kind in ("text", "labels")
    ]
    mapping_path = corpus_files(root, "tweeteval_stance", ["mapping.txt", *files])[0]
    codes = read_table(mapping_path, ["code", "name"], sep="\t", header=None, names=["code", "name"])
    names = dict(zip(codes["code"], codes["name"], strict=True))
    splits = {
        split: pd.concat(
            [
                _read_tweeteval(mapping_path.parent / d, target, prefix, names)
                for d, target in TWEETEVAL_TARGETS.items()
            ],
            ignore_index=True,
        )
        for split, prefix in _TWEETEVAL_SPLITS.items()
    }
    return finish_corpus(splits, list(names.values()), labels, label_map, limit, seed)


def _read_tweeteval(folder: Path, target: str, prefix: str, names: Mapping[str, str]) -> pd.DataFrame:
    text_path, label_path = folder / f"{prefix}_text.txt", folder / f"{prefix}_labels.txt"
    texts, codes = read_lines(text_path), read_lines(label_path)
    if len(texts) != len(codes):
        raise DataError(f"{text_path} has {len(texts)} lines but {label_path} has {len(codes)}; they must pair up.")
    frame = pd.DataFrame({"text": texts, "target": target, "label": [c.strip() for c in codes]})
    check_labels(frame, "label", list(names), label_path, first_row=1)
    frame["label"] = frame["label"].map(names)
    frame["text"] = frame["text"].str.replace("#SemST", "", regex=False).str.strip()
    check_texts(frame, text_path, first_row=1)
    return frame
