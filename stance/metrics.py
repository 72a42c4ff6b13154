"""Evaluation: the SemEval F_avg, macro-F1 and accuracy, pooled and per target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

# The classes whose F1 the SemEval-2016 official script averages.
F_AVG_CLASSES = ("FAVOR", "AGAINST")


def f_avg(y_true: Any, y_pred: Any, classes: tuple[str, ...] = F_AVG_CLASSES) -> float:
    """Mean F1 of FAVOR and AGAINST over all rows pooled, as the official SemEval-2016 script computes it."""
    return float(f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0))


def scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """F_avg, three-class macro-F1 and accuracy."""
    return {
        "f_avg": f_avg(y_true, y_pred),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


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
        for name, value in scores(predicted["label"], predicted["predicted"]).items():
            result.metrics[f"{split}/{name}"] = value
        for target, group in predicted.groupby("target", sort=True):
            group_scores = scores(group["label"], group["predicted"])
            result.metrics[f"{split}/f_avg/{target}"] = group_scores["f_avg"]
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
