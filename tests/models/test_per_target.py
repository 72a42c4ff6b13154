"""PerTarget routing: own models for targets with enough data, one joint fallback for every other row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from stance.data.corpora.semeval import semeval2016_task6
from stance.data.schema import to_frame
from stance.features.encoders import tfidf
from stance.models.per_target import PerTarget


def test_rows_go_to_their_target_model_and_all_others_to_one_fallback():
    data = semeval2016_task6(limit=300)
    train, test = to_frame(data["train"]), to_frame(data["test"])
    model = PerTarget(make_pipeline(tfidf(), LogisticRegression(max_iter=1000)), min_samples=30).fit(
        train, train["label"]
    )
    unseen = test.head(7).assign(target=[f"new target {i}" for i in range(7)])
    frame = pd.concat([test, unseen], ignore_index=True)
    routes = model._route(frame)
    assert sum(est is model.fallback_ for est, _ in routes) == 1
    assert np.array_equal(np.sum([rows for _, rows in routes], axis=0), np.ones(len(frame)))
    proba = model.predict_proba(frame)
    for i, row in frame.iterrows():
        est = model.estimators_.get(row["target"], model.fallback_)
        expected = dict(zip(est.classes_, est.predict_proba(frame.loc[[i]])[0], strict=True))
        assert proba[i] == pytest.approx([expected.get(c, 0.0) for c in model.classes_])


def test_without_fallback_an_unseen_target_is_named():
    data = semeval2016_task6(limit=200)
    train = to_frame(data["train"])
    model = PerTarget(make_pipeline(tfidf(), LogisticRegression()), fallback=False, min_samples=1, min_per_class=1)
    model.fit(train, train["label"])
    with pytest.raises(ValueError, match="'Brexit'.*no joint fallback"):
        model.predict(train.head(2).assign(target="Brexit"))


def test_an_encoder_under_per_target_models_embeds_every_rows_text_in_one_call(tmp_path, caplog):
    """One encoder call over all targets' rows, not one per target: far fewer part-filled batches (BENCHMARKS.md)."""
    import logging

    from stance.features.encoders import SentenceEmbedder, forget_vectors
    from stance.features.finetune import Contrastive

    data = semeval2016_task6(limit=150)
    train, test = to_frame(data["train"]), to_frame(data["test"]).groupby("target").head(8).reset_index(drop=True)
    embedder = SentenceEmbedder(cache_dir=str(tmp_path), show_progress=False)
    model = PerTarget(make_pipeline(embedder, LogisticRegression(max_iter=1000)), min_samples=10, min_per_class=1)
    forget_vectors()  # an earlier test's memo would keep the targets out of this test's disk cache
    model.fit(train, train["label"])
    assert test["target"].nunique() >= 3 and len(model._route(test)) >= 3
    forget_vectors()  # this process's memo; the disk cache still holds the training texts and the targets
    with caplog.at_level(logging.INFO, logger="stance.features.encoders"):
        proba = model.predict_proba(test)
    encoded = [int(r.getMessage().split(" encoded")[0].split()[-1]) for r in caplog.records if "Embedded" in r.message]
    assert [n for n in encoded if n] == [test["text"].nunique()]  # the first call encodes them all; later ones reuse
    assert proba.shape == (len(test), len(model.classes_)) and np.allclose(proba.sum(axis=1), 1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stance.features.encoders"):
        SentenceEmbedder(cache_dir=str(tmp_path), finetune=Contrastive()).prefetch(
            test.assign(text="unseen " + test.text)
        )
    assert not [r for r in caplog.records if "Embedded" in r.message]  # per target, each tuned encoder has its own


def test_undersampled_keeps_every_rare_row_and_a_seeded_draw_of_the_common_class():
    from sklearn.base import clone

    from stance.data.corpora.clef import clef2019_checkthat_task1
    from stance.features.context import LexicalSignals
    from stance.models.estimators import Undersampled
    from stance.models.walk import estimators

    train = to_frame(clef2019_checkthat_task1(limit=3000)["train"])
    positives = int((train["label"] == "1").sum())
    model = Undersampled(make_pipeline(LexicalSignals(), LogisticRegression()), majority=500, seed=3)
    fitted = model.fit(train, train["label"])
    assert fitted is model and model.kept_ == positives + 500 and list(model.classes_) == ["0", "1"]
    again = clone(model).fit(train, train["label"])
    np.testing.assert_allclose(again.predict_proba(train), model.predict_proba(train))
    other = clone(model).set_params(seed=4).fit(train, train["label"])
    assert not np.allclose(other.predict_proba(train), model.predict_proba(train))
    assert model.estimator_ in estimators(model)  # so fine-tuned weights inside it are found and logged
    everything = Undersampled(LogisticRegression(), majority=10**6).fit(np.eye(4), ["a", "a", "b", "a"])
    assert everything.kept_ == 4


def test_a_model_file_naming_classes_by_their_old_module_paths_still_loads(tmp_path):
    """Models logged before the sub-packages name `stance.model.PerTarget`, `stance.context.LexicalSignals`, ..."""
    import sys
    import zipfile

    from stance.artifact.load import load_pipeline
    from stance.artifact.save import dump_pipeline
    from stance.features.context import LexicalSignals

    train = to_frame(semeval2016_task6(limit=200)["train"])
    model = PerTarget(make_pipeline(LexicalSignals(), LogisticRegression()), min_samples=30).fit(train, train["label"])
    path = dump_pipeline(model, tmp_path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = files["schema.json"].decode()
    for new, old in (("stance.models.per_target", "stance.model"), ("stance.features.context", "stance.context")):
        assert f'"{new}"' in schema
        schema = schema.replace(f'"{new}"', f'"{old}"')
    files["schema.json"] = schema.encode()
    old_file = tmp_path / "old.skops"
    with zipfile.ZipFile(old_file, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    loaded = load_pipeline(old_file)
    assert type(loaded) is PerTarget and type(loaded.fallback_.steps[0][1]) is LexicalSignals
    assert (loaded.predict(train) == model.predict(train)).all()
    assert "stance.model" not in sys.modules  # the stand-in lives only while the file is read
