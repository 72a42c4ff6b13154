"""Evaluation: the SemEval F_avg, macro-F1 and accuracy, pooled and per target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from stance.official import FNC_LABELS, fnc_score

# The classes whose F1 the SemEval-2016 official script averages.
F_AVG_CLASSES = ("FAVOR", "AGAINST")
# Corpora with more targets than this (claims, headlines) get the per-target table but no per-target metrics.
MAX_TARGET_METRICS = 30


def f_avg(y_true: Any, y_pred: Any, classes: tuple[str, ...] = F_AVG_CLASSES) -> float:
    """Mean F1 of FAVOR and AGAINST over all rows pooled, as the official SemEval-2016 script computes it."""
    return float(f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Macro-averaged F1 over the classes present."""
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def scores(y_true: Any, y_pred: Any, labels: Any = None) -> dict[str, float]:
    """Macro-F1 and accuracy; F_avg where the labels include FAVOR and AGAINST; the FNC-1 score on FNC-1 labels."""
    labels = set(np.unique(y_true)) if labels is None else set(labels)
    out = {
        "macro_f1": macro_f1(y_true, y_pred),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    if set(F_AVG_CLASSES) <= labels:
        out["f_avg"] = f_avg(y_true, y_pred)
    if labels == set(FNC_LABELS):
        out["fnc_score"] = fnc_score(y_true, y_pred)
    return out


def metric_name(text: str) -> str:
    """`text` with the characters MLflow metric names reject replaced by `_`."""
    return re.sub(r"[^\w\-. /]", "_", str(text)).strip() or "_"


CI_METRICS = ("f_avg", "macro_f1")


@dataclass
class Evaluation:
    """Metrics (`split/metric`, `split/f_avg/target`), a per-target table and each split's predictions."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_target: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)


def _f1_by_class(gold: np.ndarray, pred: np.ndarray, classes: range) -> tuple[np.ndarray, np.ndarray]:
    """F1 per class along the last axis, and whether the class occurs at all (vectorised over resamples)."""
    f1s, present = [], []
    for c in classes:
        tp = ((gold == c) & (pred == c)).sum(axis=-1)
        wrong = ((gold == c) != (pred == c)).sum(axis=-1)  # false positives + false negatives
        f1s.append(np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(tp.shape), where=(2 * tp + wrong) > 0))
        present.append((tp + wrong) > 0)
    return np.stack(f1s, axis=-1), np.stack(present, axis=-1)


def bootstrap_ci(y_true: Any, y_pred: Any, metric: str, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `f_avg` or `macro_f1`, resampling (gold, predicted) pairs."""
    from scipy.stats import bootstrap

    names, codes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]), return_inverse=True)
    gold, pred = codes[: len(codes) // 2], codes[len(codes) // 2 :]
    averaged = [int(np.flatnonzero(names == c)[0]) for c in F_AVG_CLASSES if c in names]

    def statistic(g: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        f1, present = _f1_by_class(g, p, range(len(names)))
        if metric == "f_avg":  # as sklearn with labels=[FAVOR, AGAINST]: a class never seen counts as F1 0
            return f1[..., averaged].sum(axis=-1) / len(F_AVG_CLASSES)
        return (f1 * present).sum(axis=-1) / present.sum(axis=-1)

    result = bootstrap(
        (gold, pred), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
        method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def evaluate(model: Any, frames: dict[str, pd.DataFrame], n_bootstrap: int = 1000, seed: int = 0) -> Evaluation:
    """Score a fitted model on each split, pooled and per target, with bootstrap intervals on test."""
    result = Evaluation()
    rows = []
    for split, data in frames.items():
        predicted = data.assign(predicted=model.predict(data))
        proba = model.predict_proba(data)
        predicted["confidence"] = proba.max(axis=1)
        result.predictions[split] = predicted
        labels = set(model.classes_)
        for name, value in scores(predicted["label"], predicted["predicted"], labels).items():
            result.metrics[f"{split}/{name}"] = value
            if split == "test" and n_bootstrap and name in CI_METRICS:
                low, high = bootstrap_ci(predicted["label"], predicted["predicted"], name, n_bootstrap, seed)
                result.metrics |= {f"{split}/{name}_ci_low": low, f"{split}/{name}_ci_high": high}
        groups = predicted.groupby("target", sort=True)
        for target, group in groups:
            group_scores = scores(group["label"], group["predicted"], labels)
            if 1 < groups.ngroups <= MAX_TARGET_METRICS:
                for name in ("f_avg", "macro_f1"):
                    if name in group_scores:
                        result.metrics[f"{split}/{name}/{metric_name(target)}"] = group_scores[name]
            rows.append({"split": split, "target": target, "n": len(group), **group_scores})
    result.per_target = pd.DataFrame(rows)
    return result


def confusion_figure(predictions: pd.DataFrame, title: str) -> Any:
    """A confusion-matrix figure of gold vs predicted labels."""
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = np.unique(np.concatenate([predictions["label"], predictions["predicted"]]))
    display = ConfusionMatrixDisplay.from_predictions(
        predictions["label"], predictions["predicted"], labels=labels, cmap="Blues", colorbar=False
    )
    display.ax_.set_title(title)
    display.figure_.tight_layout()
    return display.figure_
