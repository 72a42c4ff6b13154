"""Count and TF-IDF vectorizers whose fitted vocabulary is stored compactly, so huge n-gram models stay in skops.

skops writes a `vocabulary_` dict as one JSON node per term (minutes and hundreds of MB for a million n-grams). These
subclasses behave exactly like scikit-learn's; only their pickled/skops state differs: the terms in index order as one
string plus their lengths and indices as numpy arrays, which skops stores as .npy files in milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

_STATE_KEYS = ("vocabulary_terms_", "vocabulary_lengths_", "vocabulary_indices_")


class _CompactVocabulary:
    """Mixin: `vocabulary_` leaves the state as (joined terms, lengths, indices) and comes back as a dict."""

    def __getstate__(self) -> dict[str, Any]:
        """The estimator's state with the vocabulary dict replaced by three compact values."""
        state = dict(super().__getstate__())  # type: ignore[misc]
        vocabulary = state.pop("vocabulary_", None)
        if isinstance(vocabulary, dict):
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            state["vocabulary_terms_"] = "".join(terms)
            state["vocabulary_lengths_"] = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
            state["vocabulary_indices_"] = np.fromiter((vocabulary[t] for t in terms), dtype=np.int64, count=len(terms))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild the vocabulary dict from the compact values."""
        state = dict(state)
        if "vocabulary_terms_" in state:
            joined, lengths, indices = (state.pop(key) for key in _STATE_KEYS)
            ends = np.cumsum(lengths).tolist()
            starts = [0, *ends[:-1]]
            state["vocabulary_"] = {joined[s:e]: int(i) for s, e, i in zip(starts, ends, indices.tolist(), strict=True)}
        super().__setstate__(state)  # type: ignore[misc]


class CompactCountVectorizer(_CompactVocabulary, CountVectorizer):
    """`CountVectorizer` with a compactly stored vocabulary."""


class CompactTfidfVectorizer(_CompactVocabulary, TfidfVectorizer):
    """`TfidfVectorizer` with a compactly stored vocabulary."""


# scikit-learn's classes and their compact twins (exact types only: a user's subclass may keep other state).
COMPACT = {CountVectorizer: CompactCountVectorizer, TfidfVectorizer: CompactTfidfVectorizer}
