"""The stance mix: many corpora's train + validation rows, unrelated NONE pairs, VAST or a held-out SemEval target."""

from __future__ import annotations

import pytest

from stance.config import build, compose_config, load_data
from stance.data.mix import SAME_TARGET, unrelated_pairs
from stance.data.mix import stance_mix as mix
from stance.data.schema import DataError, to_frame

CORPORA = ["semeval2016_task6", "perspectrum", "multitarget_stance_election2016"]


def reader(name: str):
    """A corpus's reader with its data config bound, as conf/data/stance_mix.yaml builds each."""
    return build(compose_config(f"data={name}", "+data._partial_=true").data)


def stance_mix(corpora: list[str], **kwargs):
    """The mix of `corpora`, evaluated as conf/data/stance_mix.yaml does: on VAST, or SemEval's held-out target."""
    readers = {name: reader(name) for name in corpora}
    return mix(readers, evaluation=reader("vast_devtest"), held_out_corpus=reader("semeval2016_task6"), **kwargs)


def test_held_out_target_is_absent_from_training_and_is_the_test(data_root):
    data = stance_mix(CORPORA, unrelated=0.3, held_out="Hillary Clinton", limit=None, per_corpus=3000)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    assert not train["target"].str.contains(SAME_TARGET["Hillary Clinton"], case=False).any()
    semeval_test = to_frame(load_data("semeval2016_task6")["test"])
    assert len(test) == (semeval_test["target"] == "Hillary Clinton").sum() == 295
    assert set(test["target"]) == {"Hillary Clinton"}
    assert len(data["validation"]) == 2062  # VAST dev selects, even when a SemEval target is held out


def test_vast_is_validation_and_test_and_never_trained_on(data_root):
    data = stance_mix(CORPORA, unrelated=0.0, per_corpus=500)
    assert (len(data["validation"]), len(data["test"])) == (2062, 3006)
    vast = set(to_frame(data["test"])["text"]) | set(to_frame(data["validation"])["text"])
    assert not vast & set(to_frame(data["train"])["text"])
    assert len(data["train"]) == 3 * 500  # per_corpus rows from each corpus, none of them duplicates
    with pytest.raises(DataError, match="VAST is for evaluation only"):
        stance_mix(["vast_devtest"])
    with pytest.raises(DataError, match="not a SemEval-2016 A target"):
        stance_mix(CORPORA, held_out="Donald Trump")


def test_unrelated_pairs_are_none_toward_another_target():
    import pandas as pd

    train = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "target": ["A", "B"] * 50, "label": "FAVOR"})
    pairs = unrelated_pairs(train, 0.3, seed=1)
    assert 0 < len(pairs) <= 30 and set(pairs["label"]) == {"NONE"}
    original = train.set_index("text").loc[pairs["text"], "target"].to_numpy()
    assert (pairs["target"].to_numpy() != original).all()
