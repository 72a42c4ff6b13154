"""Every corpus, from its data config: each `conf/data/<name>.yaml` with a `corpus` node is one, and nothing else is.

A corpus declares itself once, in its YAML: `_target_` names its reader (a function marked `@reader`), and the
`corpus` node says what `stance data list` and `describe` show:

    _target_: stance.data.corpora.semeval.semeval2016_task6
    corpus:
      task: stance
      description: SemEval-2016 Task 6 ...

Hydra passes every key of a node to its `_target_`, `corpus` too; `@reader` lets a reader take it and ignore it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf

from stance.data.schema import DataError

# The configs' package (pyproject maps the top-level `conf/` to it) and the key that makes a data config a corpus.
CONF_PACKAGE = "stance.conf"
CORPUS_KEY = "corpus"


def reader(read: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a corpus reader: it may be called with its config's `corpus` node, which it does not use."""

    @functools.wraps(read)
    def read_corpus(*args: Any, corpus: Any = None, **kwargs: Any) -> Any:
        return read(*args, **kwargs)

    return read_corpus


@dataclass(frozen=True)
class Corpus:
    """A corpus as its data config declares it: name (the file's stem), task, description and reader's path.

    `target` is None for a config that takes its reader from another one (`defaults: [files, _self_]`).
    """

    name: str
    task: str
    description: str
    target: str | None

    def reader(self) -> Callable[..., Any]:
        """The reader function `_target_` names (called without the config, it keeps the corpus's own labels)."""
        if not self.target:
            raise DataError(f"conf/data/{self.name}.yaml names no reader of its own (`_target_`).")
        module, _, function = self.target.rpartition(".")
        return getattr(importlib.import_module(module), function)


def corpora() -> dict[str, Corpus]:
    """Every corpus, by name, in alphabetical order."""
    found = {}
    folder = files(CONF_PACKAGE).joinpath("data")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        config = OmegaConf.create(entry.read_text(encoding="utf-8"))
        about = config.get(CORPUS_KEY)
        if about is None:
            continue  # a data config that is not one corpus under the data root (own files, the Hub, a mix)
        fields = {key: about.get(key) for key in ("task", "description")}
        if not all(isinstance(value, str) and value.strip() for value in fields.values()):
            raise DataError(f"conf/data/{entry.name}: its `{CORPUS_KEY}` node needs a task and a description.")
        name, target = entry.name.removesuffix(".yaml"), config.get("_target_")
        found[name] = Corpus(name, fields["task"], fields["description"], target and str(target))
    return found
