"""Zero-shot stance toward unseen targets: VAST test and leave-one-target-out on SemEval-2016 A.

    python experiments/zero_shot.py [--variant NAME ...] [--only vast|loto] [--limit N]

Every variant is the named experiment `zero_shot_stance` (conf/experiment/) plus overrides, so the same
numbers come from `python -m stance.train experiment=zero_shot_stance [overrides]` (VAST: validation = dev,
test = test) and `... data.held_out=<SemEval target>` (leave-one-target-out: every training row about the target
is removed, see `stance.data.mix.SAME_TARGET`; test = that target's SemEval test rows). Prints one row per variant.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from stance.config import compose_config
from stance.data.mix import SAME_TARGET
from stance.experiment import train

# name -> overrides of experiment=zero_shot_stance.
VARIANTS: dict[str, list[str]] = {
    "frozen MiniLM interact + MLP (default)": [],
    "frozen, no unrelated pairs": ["data.unrelated=0"],
    "cross-encoder MiniLM, 1 epoch, 2,000 rows per corpus": [
        "features=identity",
        "classifier=cross_encoder",
        "classifier.epochs=1",
        "data.per_corpus=2000",
    ],  # fmt: skip
}


def run(overrides: list[str]) -> dict[str, float]:
    """Fit and evaluate one configuration; validation and test macro-F1 and F_avg."""
    cfg = compose_config("experiment=zero_shot_stance", "bootstrap=0", "features.show_progress=false", *overrides)
    metrics = train(cfg).evaluation.metrics
    return {k: v for k, v in metrics.items() if k.split("/")[-1] in ("macro_f1", "f_avg")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: all")
    parser.add_argument("--only", choices=["vast", "loto"], help="default: both")
    parser.add_argument("--limit", type=int, default=None, help="rows per split, for a quick check")
    args = parser.parse_args()
    limit = [f"data.limit={args.limit}"] if args.limit else []
    rows = []
    for name in args.variant or VARIANTS:
        start, row = time.perf_counter(), {"variant": name}
        if args.only in (None, "vast"):
            metrics = run([*VARIANTS[name], *limit])
            row |= {"VAST dev": metrics["validation/macro_f1"], "VAST test": metrics["test/macro_f1"]}
        if args.only in (None, "loto"):
            for target in SAME_TARGET:
                row[target] = run([*VARIANTS[name], *limit, f"data.held_out={target}"])["test/macro_f1"]
            row["LOTO mean"] = sum(row[t] for t in SAME_TARGET) / len(SAME_TARGET)
        rows.append(row)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows).set_index("variant").T
    print(table.map(lambda v: f"{100 * v:.1f}").to_markdown())


if __name__ == "__main__":
    main()
