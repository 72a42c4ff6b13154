"""The example article analysed with the default models, and its agreement with the hand annotation.

    python experiments/article_analysis.py [--check]

Writes experiments/article_analysis.{txt,csv,jsonl} (the `stance analyze` output: table, statements as CSV and
JSONL) and prints the agreement with tests/fixtures/news_security_guarantees.json as a markdown table. `--check`
(run by `make bench`) exits 1 unless the default models rank hand-labelled claims above the rest and find at least
half the hand AGAINST statements and 60% of the NONE ones; the test suite checks the same on models trained on slices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

import stance
from stance.analysis.analyze import render
from stance.data.schema import data_root

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "tests" / "fixtures" / "news_security_guarantees.json"


def agreement(rows: pd.DataFrame, gold: pd.DataFrame, target: str) -> dict[str, str]:
    """Speaker, kind, claim and stance agreement of an analysis with the hand annotation."""
    same_speaker = rows["speaker"].fillna("-").to_numpy() == gold["speaker"].fillna("-").to_numpy()
    claimed = (rows["claim"] >= 0.5).astype(int)
    stance_ = rows[f"stance: {target}"]
    against = gold["stance"] == "AGAINST"
    return {
        "speaker accuracy": f"{same_speaker.mean():.3f} ({same_speaker.sum()}/{len(gold)})",
        "kind accuracy (quote/reported/narration)": f"{(rows['kind'] == gold['kind']).mean():.3f}",
        "claim: ROC-AUC of the score vs hand labels": f"{roc_auc_score(gold['claim'], rows['claim']):.3f}",
        "claim: accuracy at 0.5": f"{(claimed == gold['claim']).mean():.3f}",
        "claim: hand claims / predicted claims at 0.5": f"{gold['claim'].sum()} / {claimed.sum()}",
        "stance: accuracy": f"{(stance_ == gold['stance']).mean():.3f}",
        "stance: hand AGAINST predicted AGAINST / FAVOR / NONE": _counts(stance_[against]),
        "stance: hand NONE predicted AGAINST / FAVOR / NONE": _counts(stance_[gold["stance"] == "NONE"]),
    }


def _counts(labels: pd.Series) -> str:
    return " / ".join(str((labels == label).sum()) for label in ("AGAINST", "FAVOR", "NONE"))


def failures(rows: pd.DataFrame, gold: pd.DataFrame, target: str) -> list[str]:
    """What the default models get wrong beyond the agreed floor (empty when they pass)."""
    predicted = rows[f"stance: {target}"]
    checks = {
        "hand claims score higher than the rest": rows["claim"][gold["claim"] == 1].mean()
        > rows["claim"][gold["claim"] == 0].mean(),
        ">= 50% of hand AGAINST predicted AGAINST": (predicted[gold["stance"] == "AGAINST"] == "AGAINST").mean() >= 0.5,
        ">= 60% of hand NONE predicted NONE": (predicted[gold["stance"] == "NONE"] == "NONE").mean() >= 0.6,
    }
    return [name for name, ok in checks.items() if not ok]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the agreement falls below the floor")
    args = parser.parse_args()
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    target = fixture["target"]
    text = (data_root().parent / "examples" / "news_security_guarantees.txt").read_text(encoding="utf-8")
    analysis = stance.analyze(text, [target])
    for fmt, suffix in (("table", "txt"), ("csv", "csv"), ("jsonl", "jsonl")):
        (HERE / f"article_analysis.{suffix}").write_text(render(analysis, fmt) + "\n", encoding="utf-8")
    gold = pd.DataFrame(fixture["statements"])
    if len(gold) != len(analysis.statements):
        raise SystemExit(f"{len(analysis.statements)} statements found, {len(gold)} annotated: segmentation differs.")
    print("| measure | value |\n|---|---|")
    for name, value in agreement(analysis.statements, gold, target).items():
        print(f"| {name} | {value} |")
    missed = failures(analysis.statements, gold, target) if args.check else []
    if missed:
        raise SystemExit("Below the floor: " + "; ".join(missed))


if __name__ == "__main__":
    main()
