"""Headline/body stance: Emergent (article headline toward a claim) and FNC-1 (article body toward a headline)."""

from __future__ import annotations

import re
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
    read_table,
)

# FNC-1's labels, as its official score (`stance.evaluation.official.fnc_score`) names them.
FNC_LABELS = ("agree", "disagree", "discuss", "unrelated")


_EMERGENT_FILES = ["url-versions-2015-06-14-clean-train.csv", "url-versions-2015-06-14-clean-test.csv"]
_EMERGENT_LABELS = ["for", "against", "observing"]


@reader
def emergent(
    root: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Emergent: text = article headline, target = claim; the authors' claim-disjoint train/test split.

    Validation is carved from train as whole claims (`validation_size` = fraction of the 240 train claims), matching
    the claim-disjoint test split. The 40 repeated (claim, headline) pairs have distinct article ids and are kept.
    `id` is the article id, `group` the claim id. FNC-1 is built from these headlines: do not mix the two.
    """
    train_path, test_path = corpus_files(root, "emergent", _EMERGENT_FILES)
    fit, val = carve_groups(_read_emergent(train_path), validation_size, seed)
    splits = {"train": fit, "validation": val, "test": _read_emergent(test_path)}
    return finish_corpus(splits, _EMERGENT_LABELS, labels, label_map, limit, seed)


def _read_emergent(path: Path) -> pd.DataFrame:
    columns = ["claimHeadline", "articleHeadline", "articleHeadlineStance", "articleId", "claimId"]
    raw = read_table(path, columns, encoding="utf-8")
    check_labels(raw, "articleHeadlineStance", _EMERGENT_LABELS, path)
    frame = pd.DataFrame(
        {
            "id": raw["articleId"],
            "text": raw["articleHeadline"],
            "target": raw["claimHeadline"],
            "group": raw["claimId"],
            "label": raw["articleHeadlineStance"],
        }
    )
    check_texts(frame, path)
    return frame


_FNC_FILES = ["train_stances.csv", "train_bodies.csv", "competition_test_stances.csv", "competition_test_bodies.csv"]
# Sentence ends for `body_sentences`: end punctuation plus space, or a line break (bodies are paragraph-broken).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


@reader
def fnc1(
    root: str | None = None,
    body_sentences: int | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """FNC-1: target = headline, text = article body (or its first `body_sentences` sentences); official test set.

    Validation is carved from train by whole bodies (`validation_size` = fraction of bodies), as the official
    baseline's hold-out split does, so no body is seen in both. The exact duplicate rows (402 train, 242 test) are
    kept: the official test score counts them, and grouping by body keeps train duplicates out of validation.
    `group` is the Body ID. Score with `stance.evaluation.official.fnc_score`. Built from Emergent: do not mix the two.
    """
    if body_sentences is not None and body_sentences < 1:
        raise DataError(f"fnc1: body_sentences must be a positive number or null (whole body), got {body_sentences}.")
    paths = corpus_files(root, "fnc1", _FNC_FILES)
    train = _read_fnc(paths[0], paths[1], body_sentences)
    fit, val = carve_groups(train, validation_size, seed)
    splits = {"train": fit, "validation": val, "test": _read_fnc(paths[2], paths[3], body_sentences)}
    return finish_corpus(splits, FNC_LABELS, labels, label_map, limit, seed)


def _read_fnc(stances_path: Path, bodies_path: Path, body_sentences: int | None) -> pd.DataFrame:
    stances = read_table(stances_path, ["Headline", "Body ID", "Stance"], encoding="utf-8")
    check_labels(stances, "Stance", FNC_LABELS, stances_path)
    bodies = read_table(bodies_path, ["Body ID", "articleBody"], encoding="utf-8")
    bodies = bodies.rename(columns={"articleBody": "text"})
    check_texts(bodies, bodies_path)
    if body_sentences is not None:
        bodies["text"] = bodies["text"].map(lambda body: _first_sentences(body, body_sentences))
    repeated = bodies["Body ID"][bodies["Body ID"].duplicated()]
    if len(repeated):
        raise DataError(f"{bodies_path}: Body ID {repeated.iloc[0]} occurs more than once; each body needs one ID.")
    text = stances["Body ID"].map(bodies.set_index("Body ID")["text"])
    if text.isna().any():
        line = int(text.isna().to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"{stances_path}, line {line}: Body ID {stances['Body ID'][line - 2]} is not in {bodies_path}.")
    return pd.DataFrame(
        {"text": text, "target": stances["Headline"], "group": stances["Body ID"], "label": stances["Stance"]}
    )


def _first_sentences(text: str, n: int) -> str:
    """The first `n` sentences (a punctuation heuristic, no tokenizer model), joined by single spaces."""
    return " ".join([s for s in _SENTENCE_BREAK.split(text.strip()) if s.strip()][:n])
