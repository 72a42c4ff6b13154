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


def scores(y_true: Any, y_pred: Any, labels: Any = None) -> dict[str, float]:
    """Macro-F1 and accuracy; F_avg where the labels include FAVOR and AGAINST; the FNC-1 score on FNC-1 labels."""
    labels = set(np.unique(y_true)) if labels is None else set(labels)
    out = {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
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


@dataclass
class Evaluation:
    """Metrics (`split/metric`, `split/f_avg/target`), a per-target table and each split's predictions."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_target: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)


def evaluate(model: Any, frames: dict[str, pd.DataFrame]) -> Evaluation:
    """Score a fitted model on each split, pooled and per target."""
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
