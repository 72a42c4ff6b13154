"""F_avg against a hand-computed example."""

import pytest

from stance.metrics import f_avg, scores


def test_f_avg_matches_hand_computation():
    gold = ["FAVOR", "FAVOR", "AGAINST", "AGAINST", "NONE", "NONE"]
    pred = ["FAVOR", "AGAINST", "AGAINST", "NONE", "NONE", "FAVOR"]
    # FAVOR: P = 1/2, R = 1/2, F1 = 0.5.  AGAINST: P = 1/2, R = 1/2, F1 = 0.5.  NONE is not averaged.
    assert f_avg(gold, pred) == pytest.approx(0.5)
    gold2 = ["FAVOR", "FAVOR", "FAVOR", "AGAINST", "NONE"]
    pred2 = ["FAVOR", "FAVOR", "NONE", "FAVOR", "NONE"]
    # FAVOR: P = 2/3, R = 2/3 -> 2/3.  AGAINST: never predicted -> 0.  F_avg = 1/3.
    assert f_avg(gold2, pred2) == pytest.approx(1 / 3)
    s = scores(gold2, pred2)
    # NONE: P = 1/2, R = 1 -> 2/3; macro over three classes = (2/3 + 0 + 2/3) / 3.
    assert s["macro_f1"] == pytest.approx(4 / 9)
    assert s["accuracy"] == pytest.approx(3 / 5)


def test_bootstrap_interval_matches_sklearn_metric_on_the_same_resamples():
    import numpy as np
    from scipy.stats import bootstrap

    from stance.metrics import bootstrap_ci, macro_f1

    rng = np.random.default_rng(1)
    gold = rng.choice(["FAVOR", "AGAINST", "NONE"], 300)
    pred = np.where(rng.random(300) < 0.6, gold, rng.choice(["FAVOR", "AGAINST", "NONE"], 300))
    for name, metric in (("f_avg", f_avg), ("macro_f1", macro_f1)):
        reference = bootstrap(
            (gold, pred), metric, paired=True, vectorized=False, n_resamples=200, method="percentile",
            rng=np.random.default_rng(0),
        ).confidence_interval  # fmt: skip
        low, high = bootstrap_ci(gold, pred, name, n_resamples=200, seed=0)
        assert (low, high) == pytest.approx((reference.low, reference.high))
        assert low < metric(gold, pred) < high
