"""F_avg against a hand-computed example."""

import pytest

from stance.evaluation.metrics import f_avg, scores


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

    from stance.evaluation.metrics import bootstrap_ci, macro_f1

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


def test_clef_ranking_figures_match_the_official_scorer_definitions_by_hand():
    """The CLEF-2019 task 1 scorer (clef2019-factchecking-task1, scorer/main.py at 1236684): per debate, then mean."""
    import pandas as pd

    from stance.evaluation.metrics import map_ci, ranking_scores

    frame = pd.DataFrame(
        {
            "group": ["a"] * 6 + ["b"] * 3 + ["c"] * 4,
            "relevant": [0, 1, 0, 0, 1, 1] + [0, 0, 0] + [1, 0, 0, 0],
            "score": [0.9, 0.8, 0.8, 0.1, 0.5, 0.2] + [0.3, 0.2, 0.1] + [0.1, 0.2, 0.3, 0.4],
        }
    )
    metrics, table = ranking_scores(frame, ks=(1, 3, 5, 10))
    per = table.set_index("group")
    # a: the tie at 0.8 keeps frame order (the scorer's stable sort), so the ranking reads 0 1 0 1 1 0 and R = 3.
    # AP = (1/2 + 2/4 + 3/5) / 3; R-precision = P@3 = 1/3; reciprocal rank 1/2; P@5 = 3/5; P@10 = 3/10.
    assert per.loc["a", "ap"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert per.loc["a", ["r_precision", "rr", "p_at_1", "p_at_3", "p_at_5", "p_at_10"]].tolist() == pytest.approx(
        [1 / 3, 1 / 2, 0, 1 / 3, 3 / 5, 3 / 10]
    )
    # b: no check-worthy sentence: every figure is 0 (the scorer's AP is 0.0 when no precision was collected).
    assert per.loc["b", ["ap", "r_precision", "rr", "p_at_1", "p_at_10"]].tolist() == [0, 0, 0, 0, 0]
    # c: the one positive is ranked last of 4: AP = 1/4, R-precision = P@1 = 0, RR = 1/4, P@5 = 1/5 (k, not n).
    assert per.loc["c", ["ap", "r_precision", "rr", "p_at_5"]].tolist() == pytest.approx([1 / 4, 0, 1 / 4, 1 / 5])
    assert metrics["map"] == pytest.approx(((1 / 2 + 2 / 4 + 3 / 5) / 3 + 0 + 1 / 4) / 3)
    assert metrics["r_precision"] == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert metrics["rr"] == pytest.approx((1 / 2 + 0 + 1 / 4) / 3)
    assert metrics["p_at_5"] == pytest.approx((3 / 5 + 0 + 1 / 5) / 3)
    low, high = map_ci(table, n_resamples=200)
    assert 0 <= low < metrics["map"] < high <= (1 / 2 + 2 / 4 + 3 / 5) / 3


@pytest.mark.parametrize(
    ("relevant", "ap", "precisions"),
    [  # the official scorer's own unit tests (scorer/tests.py), on rankings 1..5
        ([0, 1, 0, 0, 1], (0.5 + 0.4) / 2, [0, 1 / 2, 1 / 3, 1 / 4, 2 / 5]),
        ([1, 0, 1, 0, 1], (1 + 2 / 3 + 3 / 5) / 3, [1, 0.5, 2 / 3, 2 / 4, 3 / 5]),
        ([0, 0, 0, 0, 0], 0.0, [0] * 5),
    ],
)
def test_clef_ranking_matches_the_official_scorer_unit_tests(relevant, ap, precisions):
    import pandas as pd

    from stance.evaluation.metrics import ranking_scores

    frame = pd.DataFrame({"group": "d", "relevant": relevant, "score": [5, 4, 3, 2, 1]})
    metrics, _ = ranking_scores(frame, ks=(1, 2, 3, 4, 5))
    assert metrics["map"] == pytest.approx(ap)
    assert [metrics[f"p_at_{k}"] for k in range(1, 6)] == pytest.approx(precisions)
