"""PERSPECTRUM: perspectives supporting or undermining a claim, in the official claim split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    DataError,
    check_labels,
    check_texts,
    corpus_files,
    finish_corpus,
    parse_json,
    read_text,
    require_fields,
)

_PERSPECTRUM_FILES = [
    "perspectrum_with_answers_v1.0.json",
    "perspective_pool_v1.0.json",
    "dataset_split_v1.0.json",
    "topic.json",
]
_PERSPECTRUM_LABELS = ["SUPPORT", "UNDERMINE"]
_PERSPECTRUM_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


@reader
def perspectrum(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """PERSPECTRUM claim-perspective pairs: text = perspective, target = claim, official train/dev/test by claim.

    One row per perspective id in each gold cluster (`stance_label_3`). `topic` holds the claim's crowd topics joined
    with "|" (multi-label; "" for the 121 claims without one). `group` is the claim id; `id` is claim/cluster/pid.
    17 pairs repeat a perspective in two clusters of the same claim; they are kept, as in SOURCE.md's counts.
    """
    claims_path, pool_path, split_path, topic_path = corpus_files(root, "perspectrum", _PERSPECTRUM_FILES)
    pairs = _perspectrum_pairs(claims_path)
    pool = pd.DataFrame(parse_json(read_text(pool_path), pool_path))
    require_fields(pool, ["pId", "text"], pool_path)
    perspectives = pd.Series(pool["text"].to_numpy(), index=pool["pId"])
    unresolved = ~pairs["pid"].isin(perspectives.index)
    if unresolved.any():
        raise DataError(f"{claims_path}: perspective id {pairs['pid'][unresolved].iloc[0]} is not in {pool_path}.")
    topics = pd.DataFrame(parse_json(read_text(topic_path), topic_path))
    require_fields(topics, ["claim_id", "topics"], topic_path)
    topic_of = dict(zip(topics["claim_id"], topics["topics"].map("|".join), strict=True))
    split_of = {int(k): v for k, v in parse_json(read_text(split_path), split_path).items()}
    frame = pd.DataFrame(
        {
            "id": pairs["claim"].astype(str) + "/" + pairs["cluster"].astype(str) + "/" + pairs["pid"].astype(str),
            "text": perspectives[pairs["pid"]].to_numpy(),
            "target": pairs["claim_text"],
            "topic": pairs["claim"].map(lambda c: topic_of.get(c, "")),
            "group": pairs["claim"].astype(str),
            "label": pairs["label"],
            "split": pairs["claim"].map(split_of),
        }
    )
    check_labels(frame, "label", _PERSPECTRUM_LABELS, claims_path, key="group", field="stance_label_3")
    check_texts(frame, pool_path, key="id")
    unsplit = ~frame["split"].isin(_PERSPECTRUM_SPLITS.values())
    if unsplit.any():
        raise DataError(f"{split_path}: claim {frame['group'][unsplit].iloc[0]} has no train/dev/test assignment.")
    splits = {name: frame[frame["split"] == raw].drop(columns="split") for name, raw in _PERSPECTRUM_SPLITS.items()}
    return finish_corpus(splits, _PERSPECTRUM_LABELS, labels, label_map, limit, seed)


def _perspectrum_pairs(path: Path) -> pd.DataFrame:
    """One row per (claim, cluster, perspective id) with the cluster's 3-way stance."""
    claims = pd.DataFrame(parse_json(read_text(path), path))
    require_fields(claims, ["cId", "text", "perspectives"], path)
    # A claim with an empty cluster list would explode to one empty row; it has no pairs, so none is lost here.
    clusters = claims.explode("perspectives", ignore_index=True).dropna(subset=["perspectives"])
    details = pd.json_normalize(clusters["perspectives"].tolist())
    require_fields(details, ["pids", "stance_label_3"], path)
    pairs = pd.DataFrame(
        {
            "claim": clusters["cId"].to_numpy(),
            "claim_text": clusters["text"].to_numpy(),
            "cluster": clusters.groupby("cId").cumcount().to_numpy(),
            "label": details["stance_label_3"].to_numpy(),
            "pid": details["pids"].to_numpy(),
        }
    )
    return pairs.explode("pid", ignore_index=True)
