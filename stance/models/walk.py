"""Walking a fitted model: every estimator nested in it, for whoever needs to find or change its parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def estimators(model: Any) -> Iterator[Any]:
    """`model` and every estimator nested in it (in attributes, lists, tuples and dicts), each once."""
    from sklearn.base import BaseEstimator

    seen, todo = set(), [model]
    while todo:
        part = todo.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, dict):
            todo.extend(part.values())
        elif isinstance(part, list | tuple):
            todo.extend(part)
        elif isinstance(part, BaseEstimator):
            yield part
            todo.extend(value for key, value in vars(part).items() if key != "vocabulary_")  # not its terms
