"""ARC stance (Hanselowski et al. 2018): NYT user comments toward claims, in FNC-1's file format."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from datasets import DatasetDict

from stance.data.corpora.fnc import FNC_LABELS, _read_fnc
from stance.data.registry import reader
from stance.data.schema import DataError, Report, carve_groups, corpus_files, finish_corpus

log = logging.getLogger(__name__)

_ARC_FILES = ["arc_stances_train.csv", "arc_bodies.csv", "arc_stances_test.csv"]
# What `unrelated` (a comment paired at random with another claim) becomes: dropped, or the label NONE.
_UNRELATED = ("drop", "none")


@reader
def arc_stance(
    root: str | None = None,
    unrelated: str = "drop",
    body_sentences: int | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """ARC: text = user comment (FNC-1's body), target = claim (its headline); the official train/test pairs.

    Read with FNC-1's reader (`body_sentences` as there). Labels agree / disagree / discuss / unrelated; the data
    config maps agree -> FAVOR, disagree -> AGAINST, discuss -> NONE. `unrelated` pairs are random pairings of a
    comment with another claim (10,670 train, 2,674 test): `unrelated="drop"` (default) drops them, counted in the
    report as `unrelated/<split>`; `unrelated="none"` keeps them labelled NONE (`original_label` stays "unrelated"),
    knowing they are trivially off-topic and that test comments then also occur in train, paired with other claims.
    Validation is carved from train by whole comments (`validation_size` = fraction of the 4,364 train comments;
    0: none, for the final fit on all of train) before `unrelated` applies, so it is the same comments either way. No
    comment has related pairs in both train and test. The 183 test claims all occur in train (an in-target split; for
    unseen targets split by claim), but with `unrelated=drop` one of them ("he U.S. should give up oversight of
    internet addresses", truncated in the files) has stance rows in test only. Exact duplicate pairs are kept (134
    train, 7 test). `group` is the comment's Body ID. Never combine `arc_stances.csv` (train + test) with these files.
    """
    if unrelated not in _UNRELATED:
        raise DataError(f"arc_stance: unrelated must be one of {list(_UNRELATED)}, got {unrelated!r}.")
    if body_sentences is not None and body_sentences < 1:
        raise DataError(
            f"arc_stance: body_sentences must be a positive number or null (whole comment), got {body_sentences}."
        )
    train_path, bodies_path, test_path = corpus_files(root, "arc_stance", _ARC_FILES)
    train = _read_fnc(train_path, bodies_path, body_sentences)
    fit, val = carve_groups(train, validation_size, seed) if validation_size else (train, None)
    splits = {"train": fit, "validation": val, "test": _read_fnc(test_path, bodies_path, body_sentences)}
    splits = {split: frame for split, frame in splits.items() if frame is not None}
    report, mapping = Report(), dict(label_map or {})
    if unrelated == "drop":
        for split, frame in splits.items():
            off = frame["label"] == "unrelated"
            report.dropped[f"unrelated/{split}"] = int(off.sum())
            splits[split] = frame[~off]
        # The documented default, so info rather than a warning.
        log.info("arc_stance: unrelated=drop dropped the random (comment, claim) pairs: %s", report.dropped)
        raw = [label for label in FNC_LABELS if label != "unrelated"]
    else:
        mapping["unrelated"] = "NONE"
        raw = list(FNC_LABELS)
    return finish_corpus(splits, raw, labels, mapping, limit, seed, report)
