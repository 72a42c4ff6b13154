"""Figures logged with each run: confusion matrix, F1 bars, PR curve for claims, calibration of confidences."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def confusion_figure(predictions: pd.DataFrame, title: str) -> Any:
    """Gold vs predicted labels."""
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = np.unique(np.concatenate([predictions["label"].astype(str), predictions["predicted"].astype(str)]))
    display = ConfusionMatrixDisplay.from_predictions(
        predictions["label"].astype(str), predictions["predicted"].astype(str), labels=labels, cmap="Blues",
        colorbar=False, xticks_rotation=45,
    )  # fmt: skip
    display.ax_.set_title(title)
    display.figure_.tight_layout()
    return display.figure_


def bar_figure(values: pd.Series, xlabel: str, title: str) -> Any:
    """Horizontal bars, one per index entry (a target or a class)."""
    figure, axes = plt.subplots(figsize=(7, 1 + 0.35 * len(values)))
    axes.barh([str(i)[:50] for i in values.index], values.to_numpy(), color="tab:blue")
    axes.set_xlim(0, 1)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    figure.tight_layout()
    return figure


def pr_figure(predictions: pd.DataFrame, title: str) -> Any:
    """Precision-recall curve of claim scores, pooled over debates."""
    from sklearn.metrics import PrecisionRecallDisplay

    display = PrecisionRecallDisplay.from_predictions(
        predictions["relevant"], predictions["score"], plot_chance_level=True
    )
    display.ax_.set_title(title)
    display.figure_.tight_layout()
    return display.figure_


def calibration_figure(predictions: pd.DataFrame, title: str) -> Any:
    """Reliability of the top label's probability: how often a prediction made with confidence p is right."""
    from sklearn.calibration import CalibrationDisplay

    correct = (predictions["label"].astype(str) == predictions["predicted"].astype(str)).astype(int)
    display = CalibrationDisplay.from_predictions(correct, predictions["confidence"], n_bins=10, strategy="quantile")
    display.ax_.set_title(title)
    display.ax_.set_xlabel("confidence of the predicted label")
    display.figure_.tight_layout()
    return display.figure_
