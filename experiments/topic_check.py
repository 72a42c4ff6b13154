"""How good is `stance analyze`'s default topic? Its eleven news topics, mapped onto AG News's four, on AG News test.

    python experiments/topic_check.py [--limit N]

The default topic is the nearest of `stance.analysis.analyze.TOPICS` by MiniLM similarity, with no training; AG News
test (7,600 news sentences, four balanced classes) is the only labelled news-topic corpus we have. Prints accuracy,
macro-F1 and the confusion matrix of the mapped topics.
"""

from __future__ import annotations

import argparse

import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from stance.analysis.analyze import TOPICS, topics
from stance.config import load_data
from stance.data.schema import to_frame

# Each default topic -> the AG News class a news editor would file it under.
TO_AG_NEWS = {
    "diplomacy and international relations": "World",
    "military, defence and security": "World",
    "economy, trade and finance": "Business",
    "energy": "Business",
    "elections and domestic politics": "World",
    "law, courts and crime": "World",
    "health and medicine": "Sci/Tech",
    "science and technology": "Sci/Tech",
    "environment and climate": "Sci/Tech",
    "society, religion and culture": "World",
    "sports": "Sports",
}


def main() -> None:
    """Score the mapped default topics on AG News test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="rows of AG News test (default: all)")
    args = parser.parse_args()
    assert set(TO_AG_NEWS) == set(TOPICS)
    test = to_frame(load_data("ag_news_test", *([f"data.limit={args.limit}"] if args.limit else []))["test"])
    predicted = pd.Series(topics(test["text"].tolist())).map(TO_AG_NEWS)
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    print(f"AG News test, {len(test)} rows: accuracy {accuracy_score(test['label'], predicted):.3f}, "
          f"macro-F1 {f1_score(test['label'], predicted, average='macro'):.3f}")  # fmt: skip
    matrix = confusion_matrix(test["label"], predicted, labels=labels)
    print(pd.DataFrame(matrix, index=[f"true {c}" for c in labels], columns=labels).to_string())


if __name__ == "__main__":
    main()
