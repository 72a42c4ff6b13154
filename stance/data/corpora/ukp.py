"""UKP Sentential Argument Mining (Stab et al. 2018): web sentences for or against one of eight topics, or neither.

The standard cross-topic benchmark: train on seven topics, test on the eighth (`held_out`).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    DataError,
    check_constant,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    read_table,
)

log = logging.getLogger(__name__)

# File stem -> the topic its rows name (the target).
UKP_TOPICS = {
    "abortion": "abortion",
    "cloning": "cloning",
    "death_penalty": "death penalty",
    "gun_control": "gun control",
    "marijuana_legalization": "marijuana legalization",
    "minimum_wage": "minimum wage",
    "nuclear_energy": "nuclear energy",
    "school_uniforms": "school uniforms",
}
_UKP_LABELS = ["Argument_against", "Argument_for", "NoArgument"]
_UKP_COLUMNS = ["topic", "retrievedUrl", "archivedUrl", "sentenceHash", "sentence", "annotation", "set"]
# The `set` column's values -> our split names.
_UKP_SETS = {"train": "train", "val": "validation", "test": "test"}
_HELD_OUT_ROWS = ("test", "all")


@reader
def ukp_sentential_argmin(
    root: str | None = None,
    held_out: str | None = None,
    held_out_rows: str = "test",
    validation_topic: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """UKP sentential argument mining: text = sentence, target = topic (e.g. "death penalty"); 25,487 sentences.

    Without `held_out`: the official in-topic split (the `set` column; train 18,336, val 2,042, test 5,109 over all
    eight topics). With `held_out=<topic>` (the topic, or its file stem: "death penalty" or death_penalty), the
    cross-topic fold: train and validation are the official train and val rows of the other seven topics, test is the
    held-out topic's official test rows (`held_out_rows=test`, as Reimers et al. 2019's code builds its folds), or all
    its rows (`held_out_rows=all`). The other topics' test rows, and with `test` the held-out topic's train/val rows,
    are not used. With `validation_topic=<another topic>` as well, validation is that topic, unseen in training (all its
    rows), and train the official train rows of the remaining six: a recipe is chosen on a topic it never saw, as it is
    tested. `validation_topic=next` is the topic after `held_out` in `UKP_TOPICS` (the last wraps to the first), so that
    one sweep over `held_out` runs all eight such folds. Labels Argument_against / Argument_for / NoArgument (AGAINST /
    FAVOR / NONE in the data config). `id` is the sentence's MD5 (`sentenceHash`, checked against the sentence), `group`
    the topic. Repeats are kept, as in the official files: 201 train and 22 val sentences also occur verbatim in test,
    mostly boilerplate that recurs on several topics' pages, so a cross-topic fold has them too (abortion: 159 and 15);
    `data_checks` reports them and `data_checks.drop_leaked=true` drops them.
    """
    if held_out_rows not in _HELD_OUT_ROWS:
        raise DataError(
            f"ukp_sentential_argmin: held_out_rows must be one of {list(_HELD_OUT_ROWS)}, got {held_out_rows!r}."
        )
    topic = _topic(held_out, "held_out")
    names = list(UKP_TOPICS.values())
    after = names[(names.index(topic) + 1) % len(names)] if topic else None
    validation = after if validation_topic == "next" else _topic(validation_topic, "validation_topic")
    if (validation is not None or validation_topic == "next") and (topic is None or validation == topic):
        raise DataError(
            f"ukp_sentential_argmin: validation_topic={validation_topic!r} needs a different data.held_out topic "
            f"(held_out={held_out!r}): validation is a topic unseen in training, test another "
            "(e.g. data.held_out=abortion data.validation_topic=cloning)."
        )
    paths = corpus_files(root, "ukp_sentential_argmin", [f"{stem}.tsv" for stem in UKP_TOPICS])
    frame = pd.concat(
        [_read_ukp(path, name) for path, name in zip(paths, UKP_TOPICS.values(), strict=True)], ignore_index=True
    )
    if topic is None:
        splits = {split: frame[frame["set"] == value] for value, split in _UKP_SETS.items()}
    else:
        rest = frame[~frame["target"].isin([topic, validation])]
        held = frame[frame["target"] == topic]
        splits = {
            "train": rest[rest["set"] == "train"],
            "validation": rest[rest["set"] == "val"] if validation is None else frame[frame["target"] == validation],
            "test": held if held_out_rows == "all" else held[held["set"] == "test"],
        }
        unused = "test rows" if validation is None else "val and test rows"
        log.info(
            "ukp_sentential_argmin: held out %r (%d test rows, held_out_rows=%s); validation %s (%d rows); train: "
            "the other %d topics' train rows (%d; their %s unused).",
            topic, len(splits["test"]), held_out_rows, repr(validation) if validation else "their val rows",
            len(splits["validation"]), rest["target"].nunique(), len(splits["train"]), unused,
        )  # fmt: skip
    splits = {split: part.drop(columns="set") for split, part in splits.items()}
    return finish_corpus(splits, _UKP_LABELS, labels, label_map, limit, seed)


def _topic(value: str | None, key: str) -> str | None:
    """The topic `value` names (topic or file stem, any case), or one error naming `key` and listing the eight."""
    if value is None or str(value).strip() == "":
        return None
    wanted = str(value).strip().lower().replace("_", " ")
    if wanted not in UKP_TOPICS.values():
        raise DataError(
            f"ukp_sentential_argmin: {key}={value!r} is not one of its eight topics: "
            f"{', '.join(UKP_TOPICS.values())} (spaces or underscores, e.g. data.{key}=death_penalty)."
        )
    return wanted


def _read_ukp(path: Path, topic: str) -> pd.DataFrame:
    # No quoting: sentences contain `"` as ordinary characters (tokenized text, e.g. `" Abortion is murder . "`).
    try:
        raw = read_table(path, _UKP_COLUMNS, encoding="utf-8", sep="\t", quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as err:
        raise DataError(
            f"{path}: {str(err).strip()}. Each line needs the {len(_UKP_COLUMNS)} tab-separated columns {_UKP_COLUMNS} "
            "(a tab inside a sentence splits it): restore the file from its source."
        ) from None
    check_constant(raw, "topic", topic, path)
    check_labels(raw, "annotation", _UKP_LABELS, path)
    check_labels(raw, "set", list(_UKP_SETS), path)
    hashes = raw["sentence"].map(lambda text: hashlib.md5(text.encode("utf-8")).hexdigest())
    wrong = hashes != raw["sentenceHash"]
    if wrong.any():
        index = int(wrong.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{path}, line {index + 2}, column 'sentence': its MD5 {hashes.iloc[index]} is not the row's sentenceHash "
            f"{raw['sentenceHash'].iloc[index]}, so it is not the corpus's sentence (edited, or columns shifted). "
            "Restore the file from its source."
        )
    frame = pd.DataFrame(
        {
            "id": raw["sentenceHash"],
            "text": raw["sentence"],
            "target": raw["topic"],
            "group": raw["topic"],
            "set": raw["set"],
            "label": raw["annotation"],
        }
    )
    check_texts(frame, path)
    return frame
