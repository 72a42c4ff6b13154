"""Reproducibility: the same config and seed give the same metrics; vectors and metrics do not depend on how texts
were batched or on what the embedding cache held before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from stance.experiment import run_experiment
from stance.features import encoders as features


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(make_cfg, tmp_path):
    overrides = ["data.limit=200", "tune_class_weights=true", "bootstrap=200", "features.show_progress=false"]
    overrides += ["mlflow.log_model=false"]
    first = run_experiment(make_cfg(f"features.cache_dir={tmp_path}/a", *overrides), overrides)
    features._MEMO.clear()  # encode again from scratch rather than reuse this process's vectors
    second = run_experiment(make_cfg(f"features.cache_dir={tmp_path}/b", *overrides), overrides)
    assert first.evaluation.metrics == second.evaluation.metrics
    client = MlflowClient(tracking_uri=make_cfg().mlflow.tracking_uri)
    logged = [client.get_run(r.run_id).data.metrics for r in (first, second)]
    quality = [{k: v for k, v in m.items() if not k.startswith(("time/", "peak_rss"))} for m in logged]
    assert quality[0] == quality[1] and "test/f_avg_ci_low" in quality[0]


@pytest.mark.slow
def test_vectors_and_metrics_do_not_depend_on_batching_or_cache_history(make_cfg, tmp_path):
    """Cold cache, warm cache, and a cache warmed up by other batches of the same texts: the same vectors, metrics."""
    from stance.features.cache import EmbeddingCache
    from stance.features.encoders import SentenceEmbedder

    overrides = ["data.limit=150", "bootstrap=0", "features.show_progress=false", "mlflow.log_model=false"]

    def run(cache: Path):
        features._MEMO.clear()  # as a new process: vectors come from the disk cache or the encoder
        return run_experiment(make_cfg(f"features.cache_dir={cache}", *overrides), overrides)

    cold = run(tmp_path / "a")
    warm = run(tmp_path / "a")
    texts = sorted({t for frame in cold.frames.values() for column in ("text", "target") for t in frame[column]})
    features._MEMO.clear()  # so that the warm-up encodes, rather than finding the runs' vectors in this process
    warmup = SentenceEmbedder(cache_dir=str(tmp_path / "b"), show_progress=False)
    warmup.encode(texts[::3])  # other companions in every batch, other padded lengths
    for text in texts[1::25]:
        warmup.encode([text])  # alone
    after_warmup = run(tmp_path / "b")
    assert cold.evaluation.metrics == warm.evaluation.metrics == after_warmup.evaluation.metrics
    first = EmbeddingCache(tmp_path / "a").get(warmup.namespace(), texts)
    second = EmbeddingCache(tmp_path / "b").get(warmup.namespace(), texts)
    assert first.keys() == second.keys() == set(texts)
    assert [t for t in texts if not np.array_equal(first[t], second[t])] == []  # bit-identical
