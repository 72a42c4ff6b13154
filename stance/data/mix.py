"""A training mix of stance corpora for unseen targets: their train + validation rows, plus unrelated pairs labelled
NONE, validated on VAST dev and tested on VAST test (never trained on), or on one held-out SemEval target."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from datasets import DatasetDict

from stance.data.schema import STANCE_LABELS, DataError, finish, to_frame

log = logging.getLogger(__name__)

# Held-out SemEval target -> pattern of training targets that count as the same target (e.g. PERSPECTRUM's
# "Abortion should be legal", the election corpus's "Hillary Clinton").
SAME_TARGET = {
    "Atheism": r"atheis|\bgod\b|religio",
    "Climate Change is a Real Concern": r"climate|global warming",
    "Feminist Movement": r"feminis|\bwomen\b",
    "Hillary Clinton": r"hillary|clinton",
    "Legalization of Abortion": r"abortion",
}
# A corpus reader with its data config bound: called with `limit` (or nothing), it returns the corpus.
Reader = Callable[..., DatasetDict]


def stance_mix(
    corpora: Mapping[str, Reader],
    evaluation: Reader,
    held_out_corpus: Reader,
    unrelated: float = 0.3,
    per_corpus: int | None = None,
    held_out: str | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Train: the train + validation rows of `corpora` (at most `per_corpus` each), deduplicated, plus unrelated pairs.

    Each corpus comes as its reader, by name, with its data config bound (`_partial_` nodes of
    conf/data/stance_mix.yaml); the mix calls it with `limit` only. unrelated: share of texts added again with another
    row's target and the label NONE (a text about something else takes no stance). held_out: a SemEval-2016 target;
    every training row about it (`SAME_TARGET`) is removed and test is that target's rows in `held_out_corpus`'s test
    split (leave-one-target-out). Otherwise validation and test are `evaluation`'s.
    """
    if held_out is not None and held_out not in SAME_TARGET:
        raise DataError(f"data.held_out={held_out!r} is not a SemEval-2016 A target; choose from {list(SAME_TARGET)}.")
    if "vast_devtest" in corpora:
        raise DataError("data.corpora lists vast_devtest: VAST is for evaluation only; remove it from the mix.")
    for name, read in {**corpora, "evaluation": evaluation, "held_out_corpus": held_out_corpus}.items():
        if not callable(read):
            raise DataError(
                f"data: {name} is not a reader but {type(read).__name__}; give its node `_partial_: true` in "
                "conf/data/stance_mix.yaml, so that the mix reads it with its own row limit."
            )
    rows = limit and limit * 4  # a quick run still gets a few rows from every corpus
    frames = []
    for name, read in corpora.items():
        splits = {s: to_frame(d) for s, d in read(**_limit(rows)).items() if s != "test"}
        frame = pd.concat(list(splits.values()), ignore_index=True)[["text", "target", "label"]].assign(corpus=name)
        if per_corpus and len(frame) > per_corpus:
            frame = frame.sample(per_corpus, random_state=seed)
        frames.append(frame)
    train = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(train["label"]) - set(STANCE_LABELS))
    if unknown:
        raise DataError(f"data.corpora: labels {unknown} are not stance labels; map them in the corpus's data config.")
    before = len(train)
    train = train.drop_duplicates(["text", "target"]).reset_index(drop=True)
    if before > len(train):
        log.warning("stance mix: %d duplicate (text, target) rows across corpora kept once", before - len(train))
    splits = _evaluation(evaluation, held_out_corpus, held_out, limit)
    if held_out is not None:
        about = train["target"].str.contains(SAME_TARGET[held_out], case=False, regex=True)
        log.warning("stance mix: held out %r: %d training rows about it removed", held_out, int(about.sum()))
        train = train[~about].reset_index(drop=True)
    train = pd.concat([train, unrelated_pairs(train, unrelated, seed)], ignore_index=True)
    return finish({"train": train.drop(columns="corpus"), **splits}, STANCE_LABELS, limit=limit, seed=seed)


def _limit(rows: int | None) -> dict[str, int]:
    return {"limit": rows} if rows else {}


def _evaluation(
    evaluation: Reader, held_out_corpus: Reader, held_out: str | None, limit: int | None
) -> dict[str, pd.DataFrame]:
    columns = ["text", "target", "label"]
    splits = {s: to_frame(d)[columns] for s, d in evaluation(**_limit(limit)).items()}
    if held_out is None:
        return splits
    test = to_frame(held_out_corpus()["test"])
    return {"validation": splits["validation"], "test": test.loc[test["target"] == held_out, columns]}


def unrelated_pairs(train: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A share of the rows again, each with another corpus row's target and the label NONE."""
    if share <= 0:
        return train.iloc[:0]
    rng = np.random.default_rng(seed)
    pairs = train.sample(frac=share, random_state=seed)
    targets = rng.choice(train["target"].unique(), len(pairs))
    pairs = pairs.assign(target=targets, label="NONE", corpus="unrelated")
    return pairs[pairs["target"].to_numpy() != train.loc[pairs.index, "target"].to_numpy()]
