"""Official task metrics that are not plain classification scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stance.data.corpora.fnc import FNC_LABELS

FNC_RELATED = ("agree", "disagree", "discuss")


def fnc_score(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """The official FNC-1 relative score: the weighted score divided by the best possible one (1.0 = perfect)."""
    gold, pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    unknown = sorted(set(gold) - set(FNC_LABELS)) + sorted(set(pred) - set(FNC_LABELS))
    if unknown or len(gold) != len(pred) or not len(gold):
        raise ValueError(
            f"fnc_score needs equally long, non-empty label lists over {list(FNC_LABELS)}; "
            f"got {len(gold)} gold and {len(pred)} predicted labels, unknown {unknown}."
        )
    gold_related, pred_related = np.isin(gold, FNC_RELATED), np.isin(pred, FNC_RELATED)
    # As the official scorer: 0.25 for a correct label, 0.25 more for telling related from unrelated among related
    # pairs (both related), and 0.5 more for the exact related label.
    score = 0.25 * (gold == pred) + 0.25 * (gold_related & pred_related) + 0.5 * ((gold == pred) & gold_related)
    best = np.where(gold_related, 1.0, 0.25)
    return float(score.sum() / best.sum())
