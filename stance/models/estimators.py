"""Estimators around a classifier: the model pipeline, prior adjustment, undersampling and label sets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline

from stance.models.per_target import PerTarget


class PriorAdjusted(ClassifierMixin, BaseEstimator):
    """Rescale a classifier's class probabilities by per-class weights (e.g. tuned on validation), then argmax."""

    def __init__(self, estimator: Any, class_weights: dict[str, float] | None = None):
        self.estimator = estimator
        self.class_weights = class_weights

    def fit(self, X: pd.DataFrame, y: Any) -> PriorAdjusted:
        """Fit the wrapped estimator (a no-op for a `FrozenEstimator`)."""
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Weighted probabilities, renormalised to sum to one."""
        weights = np.array([(self.class_weights or {}).get(str(c), 1.0) for c in self.classes_])
        proba = self.estimator_.predict_proba(X) * weights
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The class with the highest weighted probability."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class Undersampled(ClassifierMixin, BaseEstimator):
    """Fit `estimator` on every row of the rarer classes and at most `majority` random rows of the most frequent one.

    For a slow estimator on imbalanced data (a cross-encoder on CLEF's 2.7% check-worthy sentences): the rows kept
    are drawn with `seed`; prediction is the fitted estimator's, unchanged.
    """

    def __init__(self, estimator: Any, majority: int = 2000, seed: int = 13):
        self.estimator = estimator
        self.majority = majority
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any) -> Undersampled:
        """Subsample the majority class, then fit a clone of `estimator` on the kept rows (in their original order)."""
        y = np.asarray(y)
        classes, counts = np.unique(y, return_counts=True)
        common = np.flatnonzero(y == classes[counts.argmax()])
        rng = np.random.default_rng(self.seed)
        dropped = rng.choice(common, size=max(len(common) - self.majority, 0), replace=False)
        keep = np.setdiff1d(np.arange(len(y)), dropped)
        self.kept_ = int(len(keep))
        self.estimator_ = clone(self.estimator).fit(X.iloc[keep] if hasattr(X, "iloc") else X[keep], y[keep])
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The fitted estimator's class probabilities."""
        return self.estimator_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The fitted estimator's labels."""
        return self.estimator_.predict(X)


def tune_class_weights(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    score: Any,
    grid: tuple[float, ...] = (0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0),
) -> dict[str, float]:
    """Per-class probability weights that maximise `score(y, predicted)` on held-out data (first class fixed at 1)."""
    import itertools

    proba, classes = model.predict_proba(X), model.classes_
    best, best_score = (1.0,) * len(classes), -np.inf
    for rest in itertools.product(grid, repeat=len(classes) - 1):
        weights = (1.0, *rest)
        value = score(y, classes[(proba * weights).argmax(axis=1)])
        if value > best_score + 1e-12:
            best, best_score = weights, value
    return {str(c): float(w) for c, w in zip(classes, best, strict=True)}


class MultiLabel(ClassifierMixin, BaseEstimator):
    """Label sets: one-vs-rest binary classifiers over shared features, each with its own decision threshold."""

    def __init__(self, estimator: Any, thresholds: dict[str, float] | None = None):
        self.estimator = estimator
        self.thresholds = thresholds

    def fit(self, X: pd.DataFrame, y: Any) -> MultiLabel:
        """Fit on `y`, a list of label lists."""
        from sklearn.preprocessing import MultiLabelBinarizer

        self.binarizer_ = MultiLabelBinarizer().fit(y)
        self.classes_ = self.binarizer_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.binarizer_.transform(y))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of each label, columns in `classes_` order."""
        return self.estimator_.predict_proba(X)

    def indicators(self, X: pd.DataFrame) -> np.ndarray:
        """Label indicator matrix after each label's threshold."""
        cut = np.array([(self.thresholds or {}).get(str(c), 0.5) for c in self.classes_])
        return (self.predict_proba(X) >= cut).astype(int)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The label set of each row, as a tuple."""
        out = np.empty(len(X), dtype=object)
        out[:] = self.binarizer_.inverse_transform(self.indicators(X))
        return out

    def tune_thresholds(self, X: pd.DataFrame, y: Any) -> MultiLabel:
        """Set each label's threshold to the one maximising its F1 on held-out data (e.g. validation)."""
        from sklearn.metrics import f1_score

        proba, truth = self.predict_proba(X), self.binarizer_.transform(y)
        grid = np.linspace(0.05, 0.95, 19)
        self.thresholds = {
            str(c): float(max(grid, key=lambda t: f1_score(truth[:, i], proba[:, i] >= t, zero_division=0)))
            for i, c in enumerate(self.classes_)
        }
        return self


def build_model(features: Any, classifier: Any, per_target: bool = False, multilabel: bool = False) -> BaseEstimator:
    """Pipeline([features, classifier]), one-vs-rest for label sets, wrapped in `PerTarget` when asked."""
    if multilabel:
        from sklearn.multiclass import OneVsRestClassifier

        return MultiLabel(Pipeline([("features", features), ("classifier", OneVsRestClassifier(classifier))]))
    pipeline = Pipeline([("features", features), ("classifier", classifier)])
    return PerTarget(pipeline) if per_target else pipeline
