"""P-Stance: political tweets toward Donald Trump, Joe Biden and Bernie Sanders."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.corpora.leaks import drop_test_leaks
from stance.data.registry import reader
from stance.data.schema import (
    STANCE_LABELS,
    DataError,
    Report,
    check_constant,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    read_table,
)

log = logging.getLogger(__name__)


# File name part -> the target each file holds.
_PSTANCE_TARGETS = {"trump": "Donald Trump", "biden": "Joe Biden", "bernie": "Bernie Sanders"}
_PSTANCE_SPLITS = {"train": "train", "validation": "val", "test": "test"}


@reader
def pstance(
    root: str | None = None,
    keep_none: bool = False,
    held_out: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """P-Stance political tweets on three targets; official train/val/test, FAVOR/AGAINST unless `keep_none`.

    The paper's benchmark (21,574 tweets) has no NONE rows; these files add 2,490, which `keep_none=true` keeps
    (labels then AGAINST/FAVOR/NONE). Dropped NONE rows are counted in the report. One train and one validation
    tweet that are also test tweets are dropped; the train tweet repeated with conflicting labels is kept.
    held_out: a target (or its file key: trump, biden, bernie) for the cross-target benchmark: train and validation
    from the other two targets, test = the held-out target's test rows.
    """
    target = _held_out_target(held_out)
    names = [f"raw_{prefix}_{key}.csv" for prefix in _PSTANCE_SPLITS.values() for key in _PSTANCE_TARGETS]
    paths = iter(corpus_files(root, "pstance", names))
    splits = {
        split: pd.concat(
            [_read_pstance(next(paths), target) for target in _PSTANCE_TARGETS.values()], ignore_index=True
        )
        for split in _PSTANCE_SPLITS
    }
    report = Report()
    if not keep_none:
        for split, frame in splits.items():
            none = frame["label"] == "NONE"
            report.dropped[f"none_label/{split}"] = int(none.sum())
            splits[split] = frame[~none]
        # The documented default (the official benchmark), so info rather than a warning.
        log.info("pstance: keep_none=false dropped the extra NONE rows: %s", report.dropped)
    splits = drop_test_leaks(splits, "pstance", report)
    if target is not None:
        splits = {split: f[(f["target"] == target) == (split == "test")] for split, f in splits.items()}
    raw = [*STANCE_LABELS] if keep_none else ["AGAINST", "FAVOR"]
    return finish_corpus(splits, raw, labels, label_map, limit, seed, report)


def _read_pstance(path: Path, target: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance"], encoding="utf-8")
    check_labels(raw, "Stance", STANCE_LABELS, path)
    check_constant(raw, "Target", target, path)
    frame = pd.DataFrame({"text": raw["Tweet"], "target": raw["Target"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame


def _held_out_target(held_out: str | None) -> str | None:
    """The P-Stance target `held_out` names (full name or file key, any case); a DataError naming the choices."""
    if held_out is None:
        return None
    names = {**{k: v for k, v in _PSTANCE_TARGETS.items()}, **{v.lower(): v for v in _PSTANCE_TARGETS.values()}}
    if str(held_out).lower() not in names:
        choices = ", ".join(_PSTANCE_TARGETS.values())
        raise DataError(
            f"data.held_out={held_out!r} is not a P-Stance target; choose from {choices} (or trump, biden, bernie)."
        )
    return names[str(held_out).lower()]
