"""The multi-target 2016 election stance tweets: one row per tweet-target pair."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import STANCE_LABELS, check_labels, check_texts, corpus_files, finish_corpus, read_table

_MULTITARGET_SPLITS = {"train": "Train", "validation": "Dev", "test": "Test"}
# The file spells Hillary Clinton "Hilary"; use the SemEval spelling so the targets line up across corpora.
_MULTITARGET_SPELLING = {"Hilary Clinton": "Hillary Clinton"}


@reader
def multitarget_stance_election2016(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Multi-target election stance: one row per tweet-target pair (two per tweet), the official train/dev/test.

    `topic` is the tweet's target pair ("Donald Trump|Hillary Clinton"); `group` is the tweet's data row, shared by
    its two pairs. "Hilary Clinton" is respelled "Hillary Clinton" as in SemEval. The file's CR-only line
    endings are handled by pandas' line-terminator detection.
    """
    (path,) = corpus_files(root, "multitarget_stance_election2016", ["multi_target_stance.csv"])
    columns = ["Tweet", "Target 1", "Stance 1", "Target 2", "Stance 2", "Test/Train/Dev"]
    raw = read_table(path, columns, encoding="utf-8").replace(
        {"Target 1": _MULTITARGET_SPELLING, "Target 2": _MULTITARGET_SPELLING}
    )
    for column in ("Stance 1", "Stance 2"):
        check_labels(raw, column, STANCE_LABELS, path)
    check_labels(raw, "Test/Train/Dev", list(_MULTITARGET_SPLITS.values()), path)
    pairs = pd.concat(
        [
            pd.DataFrame(
                {
                    "text": raw["Tweet"],
                    "target": raw[f"Target {k}"],
                    "topic": raw["Target 1"] + "|" + raw["Target 2"],
                    "group": (raw.index + 2).astype(str),
                    "label": raw[f"Stance {k}"],
                    "split": raw["Test/Train/Dev"],
                }
            )
            for k in (1, 2)
        ]
    ).sort_index(kind="stable")
    check_texts(pairs, path)
    splits = {
        name: pairs[pairs["split"] == raw_name].drop(columns="split") for name, raw_name in _MULTITARGET_SPLITS.items()
    }
    return finish_corpus(splits, STANCE_LABELS, labels, label_map, limit, seed)
