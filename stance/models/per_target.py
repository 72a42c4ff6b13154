"""One model per target: a clone of the pipeline for each target with enough data, a joint one for the rest."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from stance.models.walk import estimators


class PerTarget(ClassifierMixin, BaseEstimator):
    """One clone of `estimator` per target, plus a joint clone for unseen targets and targets with too little data.

    A target gets its own model when it has at least `min_samples` rows and two or more classes, each with at least
    `min_per_class` rows; the joint model answers for the others.
    """

    def __init__(self, estimator: Any, fallback: bool = True, min_samples: int = 20, min_per_class: int = 3):
        self.estimator = estimator
        self.fallback = fallback
        self.min_samples = min_samples
        self.min_per_class = min_per_class

    def fit(self, X: pd.DataFrame, y: Any) -> PerTarget:
        """Fit one estimator per target with enough data (and the joint fallback)."""
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        targets = target_column(X)
        _prefetch(X, self.estimator)
        self.estimators_ = {}
        for target in np.unique(targets):
            rows = targets == target
            counts = np.unique(y[rows], return_counts=True)[1]
            if rows.sum() >= self.min_samples and len(counts) > 1 and counts.min() >= self.min_per_class:
                self.estimators_[target] = clone(self.estimator).fit(X[rows], y[rows])
        self.fallback_ = clone(self.estimator).fit(X, y) if self.fallback else None
        if self.fallback_ is None and len(self.estimators_) < len(np.unique(targets)):
            raise ValueError("Some targets have too little data for their own model; set fallback=True.")
        return self

    def _route(self, X: pd.DataFrame) -> list[tuple[Any, np.ndarray]]:
        """(estimator, row mask) pairs: one per seen target, and one joint call for all other targets' rows."""
        targets = target_column(X)
        own = np.isin(targets, list(self.estimators_))
        if not own.all() and self.fallback_ is None:
            unseen = sorted(set(targets[~own]))
            raise ValueError(f"Targets {unseen[:5]} have no model of their own and this model has no joint fallback.")
        routes = [(self.estimators_[t], targets == t) for t in np.unique(targets[own])]
        return routes + ([(self.fallback_, ~own)] if not own.all() else [])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in `classes_` order, from each row's target model."""
        out = np.zeros((len(X), len(self.classes_)))
        routes = self._route(X)
        _prefetch(X, *(est for est, _ in routes))
        for est, rows in routes:
            columns = np.searchsorted(self.classes_, est.classes_)
            out[np.ix_(rows, columns)] = est.predict_proba(X[rows])
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable class per row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _prefetch(X: pd.DataFrame, *models: Any) -> None:
    """Let every part of `models` that can (an encoder) see all rows at once before the per-target calls.

    An encoder batches one call over all rows far better than one call per target (fewer part-filled batches, less
    padding): `stance predict` encoded 1.5x the tokens of one call before this (experiments/BENCHMARKS.md).
    """
    for part in {id(p): p for model in models for p in estimators(model) if hasattr(p, "prefetch")}.values():
        part.prefetch(X)


def target_column(X: Any) -> np.ndarray:
    """The `target` column; a ValueError naming the column (and the row) when it is missing or not all strings."""
    if not isinstance(X, pd.DataFrame) or "target" not in X.columns:
        found = list(X.columns) if isinstance(X, pd.DataFrame) else type(X).__name__
        raise ValueError(f"Input frame lacks column(s) ['target']; it has {found}. Give `text` and `target`.")
    bad = ~X["target"].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if bad.any():
        row = X.index[bad.argmax()]
        raise ValueError(f"Input row {row}, column 'target': expected a string, got {X['target'][row]!r}.")
    return X["target"].to_numpy()
