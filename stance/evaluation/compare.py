"""Compare two runs' predictions on the same test set: paired bootstrap CI and p-value, and McNemar's exact test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stance.evaluation.metrics import F_AVG_CLASSES, code_scorer

KEYS = ["text", "target", "label"]
NAMES = {"f_avg": "F_avg", "macro_f1": "macro-F1"}


class ComparisonError(ValueError):
    """Two runs cannot be compared (different test sets, no predictions or model); the message says why."""


@dataclass
class Comparison:
    """Test metric of runs A and B, B - A with its 95% CI, a paired bootstrap p-value and McNemar's p-value."""

    run_a: str
    run_b: str
    name_a: str
    name_b: str
    metric: str
    n: int
    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float
    p_bootstrap: float
    n_resamples: int
    only_a_correct: int
    only_b_correct: int
    p_mcnemar: float

    def summary(self) -> str:
        """A few lines for the terminal."""
        name = NAMES[self.metric]
        return "\n".join(
            [
                f"test {name} on the same {self.n} test rows",
                f"  A {self.run_a} ({self.name_a}): {self.a:.4f}",
                f"  B {self.run_b} ({self.name_b}): {self.b:.4f}",
                f"  B - A: {self.diff:+.4f}  95% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]  "
                f"paired bootstrap p = {self.p_bootstrap:.4f} ({self.n_resamples} resamples)",
                f"  McNemar exact test on right/wrong: only A right {self.only_a_correct}, "
                f"only B right {self.only_b_correct}, p = {self.p_mcnemar:.4f}",
            ]
        )


def compare_predictions(
    a: pd.DataFrame,
    b: pd.DataFrame,
    run_a: str = "A",
    run_b: str = "B",
    name_a: str = "",
    name_b: str = "",
    n_resamples: int = 5000,
    seed: int = 0,
) -> Comparison:
    """B - A in test F_avg (macro-F1 without FAVOR/AGAINST) over two runs' predictions, row by row, with both tests.

    a, b: each run's test rows (`text`, `target`, `label`, `predicted`); `stance.comparison.compare_runs` fetches
    them from MLflow.
    """
    first, second = aligned(a, b, run_a, run_b)
    columns = [first["label"], first["predicted"], second["predicted"]]
    names, codes = np.unique(np.concatenate(columns), return_inverse=True)
    gold, pred_a, pred_b = codes.reshape(3, -1)
    metric = "f_avg" if set(F_AVG_CLASSES) <= set(first["label"]) else "macro_f1"
    score = code_scorer(names, metric)
    a_score, b_score = float(score(gold, pred_a)), float(score(gold, pred_b))
    low, high, p_bootstrap = _paired_bootstrap(gold, pred_a, pred_b, score, n_resamples, seed)
    only_a, only_b, p_mcnemar = mcnemar(gold == pred_a, gold == pred_b)
    return Comparison(
        run_a, run_b, name_a, name_b, metric, n=len(gold), a=a_score, b=b_score, diff=b_score - a_score, ci_low=low,
        ci_high=high, p_bootstrap=p_bootstrap, n_resamples=n_resamples, only_a_correct=only_a,
        only_b_correct=only_b, p_mcnemar=p_mcnemar,
    )  # fmt: skip


def aligned(a: pd.DataFrame, b: pd.DataFrame, run_a: str, run_b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' predictions in one row order; raises if they were scored on different test rows."""
    a, b = (frame.sort_values(KEYS, kind="stable").reset_index(drop=True) for frame in (a, b))
    if len(a) != len(b) or not a[KEYS].equals(b[KEYS]):
        common = len(set(a[KEYS].itertuples(index=False)) & set(b[KEYS].itertuples(index=False)))
        raise ComparisonError(
            f"Runs {run_a} and {run_b} were scored on different test sets ({len(a)} and {len(b)} rows, {common} "
            "distinct (text, target, label) rows in common). Compare runs evaluated on the same test data."
        )
    return a, b


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float]:
    """Discordant pairs (only A right, only B right) and McNemar's exact two-sided p-value."""
    from scipy.stats import binomtest

    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    return only_a, only_b, float(binomtest(only_b, only_a + only_b).pvalue) if only_a + only_b else 1.0


def _paired_bootstrap(
    gold: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, score: Callable, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Percentile 95% CI of B - A over rows resampled jointly, and the two-sided p-value of B - A = 0."""
    from scipy.stats import bootstrap

    result = bootstrap(
        (gold, pred_a, pred_b),
        lambda g, pa, pb, axis=-1: score(g, pb) - score(g, pa),
        paired=True, vectorized=True, n_resamples=n_resamples, batch=500, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    # Twice the share of resampled differences on the far side of zero: the percentile CI's own test, so the CI
    # excludes 0 about when p < 0.05. The +1s keep a Monte Carlo p-value above 0.
    deltas = result.bootstrap_distribution
    beyond = min((deltas <= 0).sum(), (deltas >= 0).sum())
    p_value = min(1.0, 2 * (int(beyond) + 1) / (n_resamples + 1))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), p_value
