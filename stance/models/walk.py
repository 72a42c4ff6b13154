"""Walking a fitted model: every estimator nested in it, for whoever needs to find or change its parts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ModelParts:
    """A fitted model's estimators, found in one walk, and the parts that logging and loading it look for."""

    estimators: tuple[Any, ...]

    @property
    def fine_tuned(self) -> list[Any]:
        """The parts that carry fine-tuned weights (`weights_key_`, `weights_path_`)."""
        return [part for part in self.estimators if hasattr(part, "weights_key_")]

    @property
    def embedding_models(self) -> list[str]:
        """Identities (name and version) of the embedding models the fitted parts refer to."""
        return sorted({part.model_identity_ for part in self.estimators if hasattr(part, "model_identity_")})

    @property
    def encoder_names(self) -> list[str]:
        """The model names (or folders) of the parts that load an encoder by name, each once."""
        names = (part.model for part in self.estimators if isinstance(getattr(part, "model", None), str))
        return list(dict.fromkeys(names))


def model_parts(model: Any) -> ModelParts:
    """Walk `model` once (parts already found are returned as they are); they answer without walking it again."""
    return model if isinstance(model, ModelParts) else ModelParts(tuple(estimators(model)))
