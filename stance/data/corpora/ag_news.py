"""AG News: topic classification of news (the official test set only), no target."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import carve_validation, check_labels, check_texts, corpus_files, finish_corpus, read_table

_AG_NEWS_LABELS = ["1", "2", "3", "4"]


@reader
def ag_news_test(
    root: str | None = None,
    make_split: bool = False,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """AG News test set (topic, labels 1-4 = World/Sports/Business/Sci/Tech); `make_split` splits it three ways.

    Without `make_split` only `test` (7,600 rows) is returned. With it, `test_size` of the rows become test and
    `validation_size` of the rest validation, stratified by label and seeded. text = title + " " + description, with
    the crawl's `\\` line breaks and entities (`#36;` = "$", `&lt;`) decoded. target is "" (no target).
    """
    (path,) = corpus_files(root, "ag_news_test", ["test.csv"])
    raw = read_table(path, ["label", "title", "description"], encoding="utf-8")
    check_labels(raw, "label", _AG_NEWS_LABELS, path)
    frame = pd.DataFrame(
        {"text": _clean_ag_news(raw["title"] + " " + raw["description"]), "target": "", "label": raw["label"]}
    )
    check_texts(frame, path)
    if not make_split:
        return finish_corpus({"test": frame}, _AG_NEWS_LABELS, labels, label_map, limit, seed)
    rest, test = carve_validation(frame, test_size, seed)
    train, validation = carve_validation(rest, validation_size, seed)
    splits = {"train": train, "validation": validation, "test": test}
    return finish_corpus(splits, _AG_NEWS_LABELS, labels, label_map, limit, seed)


def _clean_ag_news(text: pd.Series) -> pd.Series:
    # The crawl lost the "&" of numeric entities (" #39;s") and writes "\" where the source had a line break.
    text = text.str.replace(r"(?<!&)#(\d+);", r"&#\1;", regex=True).str.replace("\\", " ", regex=False)
    return text.map(html.unescape).str.replace(r"\s+", " ", regex=True).str.strip()
