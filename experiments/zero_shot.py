"""Zero-shot stance toward unseen targets: leave-one-target-out on SemEval-2016 and VAST test.

    python experiments/zero_shot.py [--variant NAME ...] [--limit N]

Training data: `stance.analyze.stance_training_data` (train + validation splits of SemEval-2016 A, multi-target
election, PERSPECTRUM, IBM claim stance and Emergent, plus unrelated pairs labelled NONE).
- Leave-one-target-out: for each SemEval target, drop every training row whose target mentions it (the keyword
  patterns below also drop e.g. PERSPECTRUM's "Abortion should be legal" and the election corpus's Hillary Clinton),
  fit, and score SemEval test A rows of that target: macro-F1 over AGAINST/FAVOR/NONE, and F_avg.
- VAST: fit on everything once, score VAST dev and test (all rows, and `seen?` = 0, VAST's zero-shot topics).
Prints one markdown row per variant; `--variant` picks some (default: all).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from stance.analyze import corpus, stance_pipeline, stance_training_data
from stance.metrics import f_avg, scores

# Held-out SemEval target -> training targets that count as the same target.
SAME_TARGET = {
    "Atheism": r"atheis|\bgod\b|religio",
    "Climate Change is a Real Concern": r"climate|global warming",
    "Feminist Movement": r"feminis|\bwomen\b",
    "Hillary Clinton": r"hillary|clinton",
    "Legalization of Abortion": r"abortion",
}


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    # Strong regularisation: a few hundred distinct targets are all the model can generalise from.
    return stance_pipeline(LogisticRegression(C=0.01, max_iter=500))


# name -> (unfitted model, share of unrelated pairs).
VARIANTS: dict[str, tuple[Callable[[], Any], float]] = {
    "interact + MLP(256) (default)": (stance_pipeline, 0.3),
    "interact + logreg": (_logreg, 0.3),
    "interact + logreg, no unrelated pairs": (_logreg, 0.0),
}


def fit(make: Callable[[], Any], unrelated: float, limit: int | None, exclude: Sequence[str] = ()) -> Any:
    train = stance_training_data(limit, exclude, unrelated=unrelated)
    return make().fit(train, train["label"])


def leave_one_target_out(make: Callable[[], Any], unrelated: float, limit: int | None) -> dict[str, float]:
    """Macro-F1 and F_avg on each SemEval target's test rows, by a model that saw no training row about it."""
    semeval = corpus("semeval2016_task6", limit)["test"]
    targets = stance_training_data(limit, unrelated=0)["target"].unique()
    out = {}
    for held_out, pattern in SAME_TARGET.items():
        exclude = [t for t in targets if re.search(pattern, t, flags=re.IGNORECASE)]
        model = fit(make, unrelated, limit, exclude)
        test = semeval[semeval["target"] == held_out]
        predicted = model.predict(test)
        out[held_out] = scores(test["label"], predicted, ["AGAINST", "FAVOR", "NONE"])["macro_f1"]
        out[f"{held_out} F_avg"] = f_avg(test["label"], predicted)
    return out


def vast(make: Callable[[], Any], unrelated: float, limit: int | None) -> dict[str, float]:
    """Macro-F1 on VAST dev and test, all rows and zero-shot topics, by a model fitted on all training data."""
    model = fit(make, unrelated, limit)
    out = {}
    for split, frame in corpus("vast_devtest", limit).items():
        frame = frame.assign(predicted=model.predict(frame))
        for subset, rows in (("all", frame), ("zero-shot", frame[frame["seen"] == "0"])):
            out[f"VAST {split} {subset}"] = scores(rows["label"], rows["predicted"])["macro_f1"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: all")
    parser.add_argument("--limit", type=int, default=None, help="rows per corpus split, for a quick check")
    args = parser.parse_args()
    rows = []
    for name in args.variant or VARIANTS:
        start = time.perf_counter()
        make, unrelated = VARIANTS[name]
        result = leave_one_target_out(make, unrelated, args.limit) | vast(make, unrelated, args.limit)
        loto = [result[t] for t in SAME_TARGET]
        rows.append({"variant": name, **result, "LOTO mean": sum(loto) / len(loto)})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows).set_index("variant").T
    print(table.map(lambda v: f"{100 * v:.1f}").to_markdown())


if __name__ == "__main__":
    main()
