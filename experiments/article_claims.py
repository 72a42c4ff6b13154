"""Claim ROC-AUC on the example article against the hand annotation, for any logged claim models.

    python experiments/article_claims.py MODEL_URI [MODEL_URI ...]

A model URI is `runs:/<id>/model`, `models:/claim-checkworthy@default` or a local path (MLFLOW_TRACKING_URI picks the
store). The article's statements are scored as `stance analyze` scores them (`stance.analysis.analyze.claim_scores`: one
document in statement order, speakers as found, all unseen in CLEF), and compared with the `claim` column of
tests/fixtures/news_security_guarantees.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.metrics import roc_auc_score

import stance
from stance.analysis.analyze import claim_scores
from stance.analysis.article import statements
from stance.data.schema import data_root

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "news_security_guarantees.json"


def main() -> None:
    """Print one markdown row per model: ROC-AUC, and hand / predicted claims at 0.5."""
    gold = [s["claim"] for s in json.loads(FIXTURE.read_text(encoding="utf-8"))["statements"]]
    text = (data_root().parent / "examples" / "news_security_guarantees.txt").read_text(encoding="utf-8")
    found = statements(text)
    if len(found) != len(gold):
        raise SystemExit(f"{len(found)} statements found, {len(gold)} annotated: segmentation differs.")
    print("| model | claim ROC-AUC | hand / predicted claims at 0.5 |\n|---|---:|---:|")
    for uri in sys.argv[1:]:
        scores = claim_scores(stance.load_model(uri), [s.text for s in found], [s.speaker for s in found])
        print(f"| {uri} | {roc_auc_score(gold, scores):.3f} | {sum(gold)} / {int((scores >= 0.5).sum())} |")


if __name__ == "__main__":
    main()
