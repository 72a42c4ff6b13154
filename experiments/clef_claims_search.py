"""Select the CLEF-2019 claim features on validation: blocks of `features=claim_context`, their weights and C.

    python experiments/clef_claims_search.py [--test]

Each block of conf/features/claim_context.yaml is computed once per split (embeddings come from the cache), then
logistic regressions (class_weight=balanced, as experiment=clef_claims_context) are fitted for every combination of
blocks, block weights and C, and scored two ways, both on training debates only:
- `val MAP`: fitted on train (15 debates), the official per-debate MAP on the validation split (4 debates, 78
  check-worthy sentences); the same model as `python -m stance.train experiment=clef_claims_context
  features.transformer_weights.<block>=<weight> classifier.C=<C>`;
- `CV MAP`: leave-debates-out over all 19 training debates (train + validation; `FOLDS` folds by debate), the
  mean AP of the 19 debates scored out of fold. The selection criterion: 19 debates, not 4.
Prints one markdown row per combination, best CV MAP first. Test MAP is printed only with --test, and only for the
best row of each block set, to report what the selection chose; it never takes part in the choice. (The blocks'
unsupervised statistics, i.e. frequent speakers and scalers, are fitted on all 19 debates for the CV; no label.)
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from stance.config import build, compose_config
from stance.data.schema import to_frame, validate
from stance.evaluation.metrics import map_ci, ranking_scores

# The ablation's block sets, in the order of the table in experiments/RESULTS.md.
BLOCK_SETS = {
    "sentence only": ("sentence",),
    "+ context": ("sentence", "previous", "next"),
    "+ speaker": ("sentence", "previous", "next", "speaker", "position"),
    "+ lexical": ("sentence", "previous", "next", "speaker", "position", "lexical"),
    "sentence + lexical": ("sentence", "lexical"),
    "sentence + speaker": ("sentence", "speaker", "position"),
}
CS = (0.01, 0.03, 0.1, 0.3)
# Weights tried for the blocks other than the sentence's own embedding (1.0 always).
WEIGHTS = (0.5, 1.0)
FOLDS = 5


def blocks() -> tuple[dict[str, dict[str, np.ndarray]], dict[str, pd.DataFrame]]:
    """Each block's feature matrix per split, fitted on train, and the frames."""
    cfg = compose_config("experiment=clef_claims_context")
    data, task = build(cfg.data), build(cfg.task)
    frames, _ = validate({split: to_frame(ds) for split, ds in data.items()})
    frames = {split: task.prepare(frame, split) for split, frame in frames.items()}
    union = build(cfg.features)
    frames["pool"] = pd.concat([frames["train"], frames["validation"]], ignore_index=True)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, transformer in union.transformer_list:
        fitted = clone(transformer).fit(frames["train"], frames["train"]["label"])
        out[name] = {
            split: np.asarray(fitted.transform(frames[split]), dtype=float) for split in ("train", "validation", "test")
        }
        out[name]["pool"] = np.asarray(clone(transformer).fit_transform(frames["pool"]), dtype=float)
    return out, frames


def cross_validated(model: LogisticRegression, design: np.ndarray, frame: pd.DataFrame) -> float:
    """MAP over the pooled debates, each scored by a model fitted on the other folds' debates."""
    proba = np.zeros(len(frame))
    for fit, held in GroupKFold(n_splits=FOLDS).split(design, groups=frame["group"]):
        proba[held] = clone(model).fit(design[fit], frame["label"].iloc[fit]).predict_proba(design[held])[:, 1]
    return score(proba, frame)


def score(proba: np.ndarray, frame: pd.DataFrame) -> float:
    """MAP of the check-worthy probability over the frame's debates."""
    return ranking(proba, frame)[0]["map"]


def ranking(proba: np.ndarray, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """The official figures of the check-worthy probability over the frame's debates, and the per-debate table."""
    ranked = pd.DataFrame({"group": frame["group"], "relevant": (frame["label"] == "1").astype(int), "score": proba})
    return ranking_scores(ranked)


def main() -> None:
    """Print CV and validation MAP for every block set x weight x C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test", action="store_true", help="also print test MAP of each block set's best row")
    args = parser.parse_args()
    start = time.perf_counter()
    matrices, frames = blocks()
    rows = []
    for label, names in BLOCK_SETS.items():
        extra = [n for n in names if n != "sentence"]
        for weight, c in itertools.product(WEIGHTS if extra else (1.0,), CS):
            weights = {n: 1.0 if n == "sentence" else weight for n in names}
            design = {s: np.hstack([matrices[n][s] * weights[n] for n in names]) for s in frames}
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
            cv = cross_validated(model, design["pool"], frames["pool"])
            model.fit(design["train"], frames["train"]["label"])
            proba = {s: model.predict_proba(design[s])[:, 1] for s in ("validation", "test")}
            metrics, per_debate = ranking(proba["test"], frames["test"])
            low, high = map_ci(per_debate)
            rows.append(
                {
                    "features": label,
                    "weight": weight,
                    "C": c,
                    "CV MAP": cv,
                    "val MAP": score(proba["validation"], frames["validation"]),
                    "test MAP": metrics["map"],
                    "test MAP 95% CI": f"[{low:.3f}, {high:.3f}]",
                    "test P@10": metrics["p_at_10"],
                    "test R-P": metrics["r_precision"],
                }
            )
    table = pd.DataFrame(rows).sort_values("CV MAP", ascending=False)
    best = table.drop_duplicates("features").set_index("features")
    table = table.drop(columns=[c for c in table if c.startswith("test")])
    print(table.to_markdown(index=False, floatfmt=".3f"))
    if args.test:
        print("\nbest row of each block set, by CV MAP:\n")
        print(best.to_markdown(floatfmt=".3f"))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
