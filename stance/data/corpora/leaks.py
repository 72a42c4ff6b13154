"""Dropping train/validation rows whose text is also a test text, of the same corpus or of others."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from stance.data.registry import corpora
from stance.data.schema import DataError, Report

log = logging.getLogger(__name__)


def normalized(text: pd.Series) -> pd.Series:
    """Lowercased text with whitespace runs collapsed: how SOURCE.md counts repeats and overlaps."""
    return text.str.lower().str.split().str.join(" ")


def drop_held_out(
    splits: dict[str, pd.DataFrame], held_out: set[str], corpus: str, reason: str, where: str, report: Report
) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose normalized text is in `held_out`, logging and counting each drop."""
    out = dict(splits)
    for split in [s for s in ("train", "validation") if s in out]:
        hit = normalized(out[split]["text"]).isin(held_out)
        if hit.any():
            message = (
                f"{corpus} {split}: dropped {int(hit.sum())} row(s) whose text (lowercased, whitespace collapsed) "
                f"also occurs in {where}, e.g. {out[split]['text'][hit].iloc[0][:60]!r}."
            )
            log.warning(message)
            report.warnings.append(message)
            report.dropped[f"{reason}/{split}"] = int(hit.sum())
            out[split] = out[split][~hit]
    return out


def drop_test_leaks(splits: dict[str, pd.DataFrame], corpus: str, report: Report) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose text is also a test text of the same corpus (test itself is kept whole)."""
    return drop_held_out(splits, set(normalized(splits["test"]["text"])), corpus, "test_leak", "test", report)


def drop_overlap_with(
    splits: dict[str, pd.DataFrame], others: Sequence[str], root: str | None, corpus: str, report: Report
) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose text is in the test split of each corpus named in `others`."""
    known = corpora()
    for other in others:
        if other not in known or other == corpus:
            choices = [name for name in known if name != corpus]
            raise DataError(f"{corpus}: exclude_overlap_with names {other!r}; choose corpora from {choices}.")
        held_out = known[other].reader()(root=root)
        if "test" not in held_out:
            raise DataError(f"{corpus}: exclude_overlap_with names {other!r}, which has no test split.")
        texts = set(normalized(pd.Series(held_out["test"]["text"], dtype=str)))
        splits = drop_held_out(splits, texts, corpus, f"overlap/{other}", f"{other} test", report)
    return splits
