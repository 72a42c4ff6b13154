"""Unsupervised topic discovery: clusters of sentence embeddings, named by their class-based TF-IDF keywords."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from stance.features.encoders import SentenceEmbedder
from stance.features.pretrained import DEFAULT_MODEL


def ctfidf_keywords(texts: list[str], clusters: np.ndarray, top: int = 8) -> dict[int, list[str]]:
    """Top words per cluster by class-based TF-IDF: term frequency in the cluster x log(1 + mean words / frequency)."""
    from sklearn.feature_extraction.text import CountVectorizer

    ids = np.unique(clusters)
    joined = [" ".join(t for t, c in zip(texts, clusters, strict=True) if c == k) for k in ids]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    counts = vectorizer.fit_transform(joined).toarray().astype(float)
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1))
    vocabulary = vectorizer.get_feature_names_out()
    return {int(k): [str(vocabulary[i]) for i in np.argsort(-(tf * idf)[row])[:top]] for row, k in enumerate(ids)}


def discover(
    texts: list[str], n_clusters: int = 8, seed: int = 13, model: str = DEFAULT_MODEL, top: int = 8
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Cluster texts by embedding (k-means, seeded): cluster ids, a table of size and keywords, the embeddings."""
    from sklearn.cluster import KMeans

    if len(texts) < n_clusters:
        raise ValueError(f"{len(texts)} texts cannot form {n_clusters} clusters; lower n_clusters or give more texts.")
    embeddings = SentenceEmbedder(model, target_mode="none", show_progress=False).encode(list(texts))
    clusters = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(embeddings)
    keywords = ctfidf_keywords(list(texts), clusters, top)
    sizes = np.bincount(clusters, minlength=n_clusters)
    table = pd.DataFrame(
        {"cluster": range(n_clusters), "size": sizes, "keywords": [", ".join(keywords[k]) for k in range(n_clusters)]}
    )
    return clusters, table.sort_values("size", ascending=False).reset_index(drop=True), embeddings


def topic_map(embeddings: np.ndarray, clusters: np.ndarray, table: pd.DataFrame, seed: int = 13) -> Any:
    """A 2-D map (PCA of the embeddings) coloured by cluster, each cluster labelled by its first keywords."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    points = PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    figure, axes = plt.subplots(figsize=(8, 7))
    axes.scatter(points[:, 0], points[:, 1], c=clusters, cmap="tab20", s=6, alpha=0.6)
    for row in table.itertuples():
        centre = points[clusters == row.cluster].mean(axis=0)
        axes.annotate(f"{row.cluster}: {', '.join(row.keywords.split(', ')[:3])}", centre, fontsize=8, weight="bold")
    axes.set_title("topics discovered (PCA of sentence embeddings)")
    figure.tight_layout()
    return figure
