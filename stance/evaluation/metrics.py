"""Evaluation: stance (SemEval F_avg, macro-F1, per target), topics (label sets) and claim rankings (MAP, P@k)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    jaccard_score,
    precision_recall_fscore_support,
)

from stance.evaluation.official import FNC_LABELS, fnc_score

log = logging.getLogger(__name__)

# The classes whose F1 the SemEval-2016 official script averages.
F_AVG_CLASSES = ("FAVOR", "AGAINST")
# Corpora with more targets than this (claims, headlines) get the per-target table but no per-target metrics.
MAX_TARGET_METRICS = 30
# The precision cut-offs of the CLEF-2019 CheckThat! task 1 scorer (MAIN_THRESHOLDS in its scorer/main.py).
RANK_KS = (1, 3, 5, 10, 20, 50)


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
    """Metrics (`split/metric`, `split/f_avg/target`), per-target and per-class tables, each split's predictions."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_target: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Each split's class probabilities (columns in `classes_` order), so claim rankings need no second prediction.
    probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def _f1_by_class(gold: np.ndarray, pred: np.ndarray, classes: range) -> tuple[np.ndarray, np.ndarray]:
    """F1 per class along the last axis, and whether the class occurs at all (vectorised over resamples)."""
    f1s, present = [], []
    for c in classes:
        tp = ((gold == c) & (pred == c)).sum(axis=-1)
        wrong = ((gold == c) != (pred == c)).sum(axis=-1)  # false positives + false negatives
        f1s.append(np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(tp.shape), where=(2 * tp + wrong) > 0))
        present.append((tp + wrong) > 0)
    return np.stack(f1s, axis=-1), np.stack(present, axis=-1)


def code_scorer(names: np.ndarray, metric: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """F_avg or macro-F1 of label codes (indices into `names`) along the last axis, vectorised over resamples."""
    averaged = [int(np.flatnonzero(names == c)[0]) for c in F_AVG_CLASSES if c in names]

    def score(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
        f1, present = _f1_by_class(gold, pred, range(len(names)))
        if metric == "f_avg":  # as sklearn with labels=[FAVOR, AGAINST]: a class never seen counts as F1 0
            return f1[..., averaged].sum(axis=-1) / len(F_AVG_CLASSES)
        return (f1 * present).sum(axis=-1) / present.sum(axis=-1)

    return score


def bootstrap_ci(y_true: Any, y_pred: Any, metric: str, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `f_avg` or `macro_f1`, resampling (gold, predicted) pairs."""
    from scipy.stats import bootstrap

    names, codes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]), return_inverse=True)
    gold, pred = codes[: len(codes) // 2], codes[len(codes) // 2 :]
    score = code_scorer(names, metric)
    result = bootstrap(
        (gold, pred), lambda g, p, axis=-1: score(g, p), paired=True, vectorized=True, n_resamples=n_resamples,
        method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def evaluate(
    model: Any, frames: dict[str, pd.DataFrame], task: Any = None, n_bootstrap: int = 1000, seed: int = 0
) -> Evaluation:
    """Score a fitted model on each split as its task asks (labels, label sets, or claim rankings)."""
    if task is not None and task.multilabel:
        return _evaluate_label_sets(model, frames)
    result = _evaluate_labels(model, frames, n_bootstrap, seed)
    if task is not None and task.positive_label is not None:
        _add_ranking(result, model, str(task.positive_label), n_bootstrap, seed)
    return result


def _per_class(split: str, y_true: Any, y_pred: Any, labels: Any) -> pd.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), zero_division=0
    )
    return pd.DataFrame(
        {"split": split, "class": list(labels), "precision": precision, "recall": recall, "f1": f1, "n": support}
    )


def _evaluate_labels(model: Any, frames: dict[str, pd.DataFrame], n_bootstrap: int, seed: int) -> Evaluation:
    result, rows, classes = Evaluation(), [], []
    labels = [str(c) for c in model.classes_]
    for split, data in frames.items():
        log.info("Labelling the %s split (%d rows)", split, len(data))  # heads its encoders' lines (verbose=true)
        proba = result.probabilities[split] = model.predict_proba(data)
        predicted = data.assign(predicted=np.asarray(labels, dtype=object)[proba.argmax(axis=1)])
        predicted["confidence"] = proba.max(axis=1)
        result.predictions[split] = predicted
        for name, value in scores(predicted["label"], predicted["predicted"], set(labels)).items():
            result.metrics[f"{split}/{name}"] = value
            if split == "test" and n_bootstrap and name in CI_METRICS:
                low, high = bootstrap_ci(predicted["label"], predicted["predicted"], name, n_bootstrap, seed)
                result.metrics |= {f"{split}/{name}_ci_low": low, f"{split}/{name}_ci_high": high}
        per_class = _per_class(split, predicted["label"], predicted["predicted"], labels)
        classes.append(per_class)
        if len(labels) <= MAX_TARGET_METRICS:
            result.metrics |= {f"{split}/f1/{metric_name(c)}": f for c, f in zip(labels, per_class["f1"], strict=True)}
        groups = predicted.groupby("target", sort=True)
        for target, group in groups:
            group_scores = scores(group["label"], group["predicted"], set(labels))
            if 1 < groups.ngroups <= MAX_TARGET_METRICS:
                for name in ("f_avg", "macro_f1"):
                    if name in group_scores:
                        result.metrics[f"{split}/{name}/{metric_name(target)}"] = group_scores[name]
            rows.append({"split": split, "target": target, "n": len(group), **group_scores})
    result.per_target, result.per_class = pd.DataFrame(rows), pd.concat(classes, ignore_index=True)
    return result


def ranking_scores(frame: pd.DataFrame, ks: tuple[int, ...] = RANK_KS) -> tuple[dict[str, float], pd.DataFrame]:
    """The CLEF-2019 CheckThat! task 1 scorer's figures per `group` (debate), then averaged over debates.

    From `relevant` (0/1) and `score`, as the official scorer (scorer/main.py of clef2019-factchecking-task1) defines
    them: rows ranked by score, ties kept in frame order (its stable sort); AP = mean of the precision at each
    relevant row (0 without relevant rows); R-precision = precision at R, the number of relevant rows; reciprocal
    rank of the first relevant row; P@k = relevant rows in the top k / k. `map` etc. are means over debates.
    """
    rows = []
    for group, part in frame.groupby("group", sort=True):
        ranked = part["relevant"].to_numpy()[np.argsort(-part["score"].to_numpy(), kind="stable")]
        positives = int(ranked.sum())
        row = {"group": group, "n": len(part), "positives": positives}
        # Ranks as scores: strictly decreasing, so sklearn's AP is exactly the scorer's (no interpolation, no ties).
        row["ap"] = float(average_precision_score(ranked, np.arange(len(ranked), 0, -1))) if positives else 0.0
        row["r_precision"] = float(ranked[:positives].sum() / positives) if positives else 0.0
        row["rr"] = float(1 / (ranked.argmax() + 1)) if positives else 0.0
        row |= {f"p_at_{k}": float(ranked[:k].sum() / k) for k in ks}
        rows.append(row)
    table = pd.DataFrame(rows)
    names = ["r_precision", "rr", *(f"p_at_{k}" for k in ks)]
    metrics = {"map": float(table["ap"].mean())} | {name: float(table[name].mean()) for name in names}
    return metrics, table


def map_ci(table: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of MAP, resampling debates (the rows of `ranking_scores`' table)."""
    from scipy.stats import bootstrap

    ap = table["ap"].to_numpy(dtype=float)
    if len(ap) < 2:
        return float("nan"), float("nan")
    result = bootstrap(
        (ap,), np.mean, vectorized=True, n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed)
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _add_ranking(result: Evaluation, model: Any, positive: str, n_bootstrap: int = 0, seed: int = 0) -> None:
    """Claim metrics from the positive class's probability: per-debate MAP and P@k, PR-AUC, F1 of positives."""
    column = [str(c) for c in model.classes_].index(positive)
    tables = []
    for split, predicted in result.predictions.items():
        frame = predicted.assign(
            score=result.probabilities[split][:, column], relevant=(predicted["label"] == positive).astype(int)
        )
        if "group" not in frame:
            frame["group"] = "all"
        result.predictions[split] = frame
        metrics, table = ranking_scores(frame)
        if split == "test" and n_bootstrap:
            metrics["map_ci_low"], metrics["map_ci_high"] = map_ci(table, n_bootstrap, seed)
        metrics["pr_auc"] = float(average_precision_score(frame["relevant"], frame["score"]))
        metrics["f1_positive"] = float(
            f1_score(frame["label"], frame["predicted"], pos_label=positive, zero_division=0)
        )
        result.metrics |= {f"{split}/{k}": v for k, v in metrics.items()}
        tables.append(table.assign(split=split))
    result.per_target = pd.concat(tables, ignore_index=True)


def _evaluate_label_sets(model: Any, frames: dict[str, pd.DataFrame]) -> Evaluation:
    """Micro- and macro-F1 and sample-averaged Jaccard over label sets, and F1 per label."""
    result, classes = Evaluation(), []
    for split, data in frames.items():
        log.info("Labelling the %s split (%d rows)", split, len(data))  # heads its encoders' lines (verbose=true)
        truth, guess = model.binarizer_.transform(data["label"]), model.indicators(data)
        result.predictions[split] = data.assign(predicted=list(model.binarizer_.inverse_transform(guess)))
        result.metrics |= {
            f"{split}/micro_f1": float(f1_score(truth, guess, average="micro", zero_division=0)),
            f"{split}/macro_f1": float(f1_score(truth, guess, average="macro", zero_division=0)),
            f"{split}/jaccard": float(jaccard_score(truth, guess, average="samples", zero_division=0)),
        }
        f1 = f1_score(truth, guess, average=None, zero_division=0)
        classes.append(pd.DataFrame({"split": split, "class": model.classes_, "f1": f1, "n": truth.sum(axis=0)}))
    result.per_class = pd.concat(classes, ignore_index=True)
    return result
