"""IBM Debater corpora of stance toward a debate motion: claim stance, ArgKP-2021 arguments, ArgQ-30k arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.corpora.leaks import drop_overlap_with, drop_test_leaks
from stance.data.registry import reader
from stance.data.schema import (
    Report,
    carve_groups,
    check_constant,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    read_table,
)

_IBM_COLUMNS = ["topicId", "split", "topicText", "topicTarget", "claims.claimId", "claims.stance"]
_IBM_LABELS = ["PRO", "CON"]


@reader
def ibm_claim_stance(
    root: str | None = None,
    validation_size: float = 0.2,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM Debater claim stance: text = claim (corrected text), target = the debate motion; official topic split.

    The official train/test split is topic-disjoint (25/30 topics). Validation is carved from train as whole topics
    (GroupShuffleSplit on `topicId`; `validation_size` is the fraction of the 25 train topics), so it is topic-disjoint
    too. `topic` is the motion's target phrase (`topicTarget`), `group` the topic id, `id` the claim id.
    """
    (path,) = corpus_files(root, "ibm_claim_stance", ["claim_stance_dataset_v1.csv"])
    raw = read_table(path, [*_IBM_COLUMNS, "claims.claimCorrectedText"], encoding="utf-8")
    check_labels(raw, "claims.stance", _IBM_LABELS, path)
    check_labels(raw, "split", ["train", "test"], path)
    frame = pd.DataFrame(
        {
            "id": raw["claims.claimId"],
            "text": raw["claims.claimCorrectedText"],
            "target": raw["topicText"],
            "topic": raw["topicTarget"],
            "group": raw["topicId"],
            "label": raw["claims.stance"],
        }
    )
    check_texts(frame, path)
    fit, val = carve_groups(frame[raw["split"] == "train"], validation_size, seed)
    splits = {"train": fit, "validation": val, "test": frame[raw["split"] == "test"]}
    return finish_corpus(splits, _IBM_LABELS, labels, label_map, limit, seed)


_ARGKP_FILES = {
    "train": "kpm_data/arguments_train.csv",
    "validation": "kpm_data/arguments_dev.csv",
    "test": "test_data/arguments_test.csv",
}
_ARGKP_LABELS = ["1", "-1"]


@reader
def ibm_argkp2021(
    root: str | None = None,
    exclude_overlap_with: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM ArgKP-2021 argument stance: text = argument, target = debate motion; official topic-disjoint splits.

    Stance 1/-1 = pro/con (no NONE). `id` is `arg_id` (unique within a split only), `group` the motion. The two
    test arguments that differ only in spacing are both kept (the official test set). `exclude_overlap_with`
    (e.g. [ibm_argq_30k]) drops train/validation arguments that occur in those corpora's test splits: 1,168 ArgKP
    train arguments are ArgQ test arguments. Key points and match labels are not read.
    """
    paths = corpus_files(root, "ibm_argkp2021", list(_ARGKP_FILES.values()))
    splits = {split: _read_argkp(path) for split, path in zip(_ARGKP_FILES, paths, strict=True)}
    report = Report()
    splits = drop_test_leaks(splits, "ibm_argkp2021", report)
    splits = drop_overlap_with(splits, exclude_overlap_with, root, "ibm_argkp2021", report)
    return finish_corpus(splits, _ARGKP_LABELS, labels, label_map, limit, seed, report)


def _read_argkp(path: Path) -> pd.DataFrame:
    raw = read_table(path, ["arg_id", "argument", "topic", "stance"], encoding="utf-8")
    check_labels(raw, "stance", _ARGKP_LABELS, path)
    frame = pd.DataFrame(
        {
            "id": raw["arg_id"],
            "text": raw["argument"],
            "target": raw["topic"],
            "group": raw["topic"],
            "label": raw["stance"],
        }
    )
    check_texts(frame, path)
    return frame


# Split -> (file, its `set` value).
_ARGQ_FILES = {
    "train": ("raw_train_all_onecol.csv", "train"),
    "validation": ("raw_val_all_onecol.csv", "dev"),
    "test": ("raw_test_all_onecol.csv", "test"),
}


@reader
def ibm_argq_30k(
    root: str | None = None,
    exclude_overlap_with: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM-ArgQ-Rank-30kArgs argument stance (ZeroStance copy): text = argument, target = motion; official splits.

    FAVOR/AGAINST only; quality scores are not in this copy. `group` is the motion. The 2 train texts that repeat
    up to case and spacing are kept. `exclude_overlap_with` (e.g. [ibm_argkp2021]) drops train/validation arguments
    that occur in those corpora's test splits (none for ArgKP, whose test topics are new; the leak runs the other way,
    see `ibm_argkp2021`).
    """
    paths = corpus_files(root, "ibm_argq_30k", [name for name, _ in _ARGQ_FILES.values()])
    splits = {
        split: _read_argq(path, set_value)
        for (split, (_, set_value)), path in zip(_ARGQ_FILES.items(), paths, strict=True)
    }
    report = Report()
    splits = drop_test_leaks(splits, "ibm_argq_30k", report)
    splits = drop_overlap_with(splits, exclude_overlap_with, root, "ibm_argq_30k", report)
    return finish_corpus(splits, ["FAVOR", "AGAINST"], labels, label_map, limit, seed, report)


def _read_argq(path: Path, set_value: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target 1", "Stance 1", "set"], encoding="utf-8")
    check_labels(raw, "Stance 1", ["FAVOR", "AGAINST"], path)
    check_constant(raw, "set", set_value, path)
    frame = pd.DataFrame(
        {"text": raw["Tweet"], "target": raw["Target 1"], "group": raw["Target 1"], "label": raw["Stance 1"]}
    )
    check_texts(frame, path)
    return frame
