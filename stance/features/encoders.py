"""Features as scikit-learn transformers over a frame of `text` (+ `target`): the sentence embedder, TF-IDF.

The embedder's vectors come from this process's memo, else the disk cache (`features.cache`), else its encoder
(`features.pretrained` finds and loads it), in canonical batches.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from stance.features import finetune as fine_tuning  # `finetune` is the embedder's parameter
from stance.features.cache import open_cache
from stance.features.pretrained import (
    DEFAULT_MODEL,
    ModelLoadError,
    check_device,
    load_encoder,
    model_identity,
    resolve_model_path,
)

TARGET_MODES = ("none", "prefix", "concat", "interact")
PRECISIONS = ("float32", "bfloat16", "auto")
# Encoded vectors are committed to the disk cache every this many batches' worth of texts.
COMMIT_EVERY = 32
# On CPU a bucket's last, part-filled batch is filled with copies up to this many tokens (rows x padded length), not
# to `batch_size` rows. A row's bits depend on its batch only while the batch is small: MKL's matrix products round
# differently below about K/8 rows of tokens (192 for MiniLM, 384 for mpnet, on 2 and 4 threads; experiments/
# RELIABILITY.md), and from there on a row gets the bits of a full batch. 1024 leaves room up to K = 8192.
MIN_BATCH_TOKENS = 1024

log = logging.getLogger(__name__)


class _VectorMemo:
    """Vectors already computed in this process by (namespace, text), least recently used dropped past `max_bytes`."""

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, namespace: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The memoised vectors of those `texts` that are here (marked as recently used)."""
        found = {}
        for text in dict.fromkeys(texts):
            vector = self._entries.get((namespace, text))
            if vector is not None:
                self._entries.move_to_end((namespace, text))
                found[text] = vector
        return found

    def put(self, namespace: str, vectors: dict[str, np.ndarray]) -> None:
        """Remember `vectors`, then drop the least recently used until within `max_bytes`."""
        for text, vector in vectors.items():
            old = self._entries.pop((namespace, text), None)
            self.nbytes += vector.nbytes - (0 if old is None else old.nbytes)
            self._entries[(namespace, text)] = vector
        while self.nbytes > self.max_bytes and self._entries:
            self.nbytes -= self._entries.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        """Forget every vector."""
        self._entries.clear()
        self.nbytes = 0


# Vectors already computed in this process: clones of an embedder share them. Bounded, so a long-lived process
# (a server, a notebook) keeps at most this much (~350k MiniLM vectors), the disk cache holding the rest.
MEMO_MAX_BYTES = 512 * 2**20
_MEMO = _VectorMemo(MEMO_MAX_BYTES)


# Who hears about each encoded batch: `stance predict` moves its per-row bar with it (`encoding_progress`).
_PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar("encoding_progress", default=None)


@contextlib.contextmanager
def encoding_progress(report: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, each encoded batch calls `report(texts encoded so far, texts to encode)` of its call."""
    token = _PROGRESS.set(report)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


_PROGRESS_FORCED = False


@contextlib.contextmanager
def progress_bars() -> Iterator[None]:
    """Within, every embedder shows its encoding progress bar, while the model keeps its own `show_progress`."""
    global _PROGRESS_FORCED  # a switch for this process's training, not a parameter: the logged model stays quiet
    before, _PROGRESS_FORCED = _PROGRESS_FORCED, True
    try:
        yield
    finally:
        _PROGRESS_FORCED = before


def forget_vectors() -> None:
    """Drop this process's in-memory embeddings (they are in the disk cache), so memory stays flat over many calls."""
    _MEMO.clear()


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Sentence-transformers embeddings of `text`, conditioned on `target` as `target_mode` says.

    target_mode: "none" (text only), "prefix" (embed "target: text"), "concat" ([text, target]),
    "interact" ([text, target, text * target]).
    prompt: a string the encoder prepends to every text (e.g. "query: " for E5 models).
    precision: "float32", "bfloat16" (torch autocast: about twice as fast on CPUs with AVX512-BF16/AMX, vectors
    within ~1e-4 cosine of float32; slower on CPUs without them), or "auto" (bfloat16 where the CPU has them).
    cache_dir: folder of the persistent embedding cache (and assembled models); None: $STANCE_CACHE or the user
    cache dir. num_threads: torch intra-op threads while encoding; None leaves torch's default.
    finetune: None (a frozen encoder), or `stance.features.finetune.Contrastive(...)`: fit first fine-tunes the encoder
    on the training rows' labels (SetFit's contrastive pairs), caching the weights by content.
    """

    precision = "float32"  # class defaults: embedders saved before these parameters existed load without them
    finetune = None

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        target_mode: str = "concat",
        batch_size: int = 64,
        normalize: bool = True,
        prompt: str | None = None,
        precision: str = "float32",
        device: str = "cpu",
        num_threads: int | None = None,
        cache_dir: str | None = None,
        show_progress: bool = True,
        finetune: Any = None,
    ):
        self.model = model
        self.target_mode = target_mode
        self.batch_size = batch_size
        self.normalize = normalize
        self.prompt = prompt
        self.precision = precision
        self.device = device
        self.num_threads = num_threads
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self.finetune = finetune

    def fit(self, X: pd.DataFrame, y: Any = None) -> SentenceEmbedder:
        """Check the input and, with `finetune`, fine-tune the encoder on the labels `y` (or reuse cached weights)."""
        if self.target_mode not in TARGET_MODES:
            raise ValueError(f"target_mode must be one of {TARGET_MODES}, got {self.target_mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device != "cpu":  # cpu always works; skip importing torch when the cache has every vector
            check_device(self.device)
        for fitted in ("weights_key_", "weights_path_"):
            self.__dict__.pop(fitted, None)
        if self.finetune is not None:
            self._fine_tune(X, y)
        self.transform(X)
        self.model_identity_ = self._identity()
        return self

    def _fine_tune(self, X: pd.DataFrame, y: Any) -> None:
        if y is None:
            raise ValueError("features.finetune needs the training labels: fit(X, y).")
        texts, targets = _columns(X, needs_target=self.target_mode == "prefix")
        if self.target_mode == "prefix":  # tune on exactly what is embedded
            texts = [f"{g}: {t}" for t, g in zip(texts, targets, strict=True)]
        codes = fine_tuning.label_codes(y)[1]
        settings = fine_tuning.settings_dict(self.finetune, self.device) | {"normalize": bool(self.normalize)}
        digest = fine_tuning.data_digest(texts, codes)
        every = self.finetune.checkpoint_steps
        saved = fine_tuning.checkpoints(
            "contrastive", model_identity(self.model), digest, settings, every, self.cache_dir
        )
        base = resolve_model_path(self.model, self.cache_dir)
        train, timing = fine_tuning.timed(
            lambda out: fine_tuning.train_contrastive(base, texts, codes, self.finetune, self.device, out, saved)
        )
        path, trained = fine_tuning.train_once(saved.key, train, self.cache_dir, saved)
        self.weights_key_, self.weights_path_ = saved.key, str(path)
        self.fit_seconds_, self.fit_cached_ = timing["seconds"], not trained
        self.resumed_from_step_, self.fit_steps_ = saved.resumed_from, saved.steps

    def _identity(self) -> str:
        """The encoder's identity: the stock model's, or the fine-tuned weights' content address."""
        key = getattr(self, "weights_key_", None)
        return f"{model_identity(self.model)}+{key}" if key else model_identity(self.model)

    def _encoder_path(self) -> str:
        """Where the encoder loads from: the fine-tuned weights if fitted with them, else the model name."""
        key = getattr(self, "weights_key_", None)
        if key is None:
            return self.model
        if Path(self.weights_path_, fine_tuning.COMPLETE).is_file():
            return self.weights_path_
        cached = fine_tuning.cached_weights(key, self.cache_dir)
        if cached is None:
            raise ModelLoadError(
                f"The fine-tuned encoder {key} is neither at {self.weights_path_} nor in the cache "
                f"{fine_tuning.store_dir(self.cache_dir)}. Load the model with stance.load_model(uri), which brings "
                "the weights logged inside it, or refit."
            )
        return str(cached)

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

    def prefetch(self, X: pd.DataFrame) -> None:
        """A frozen encoder embeds all of X's rows now, so that transforms of its subsets (per target) hit the memo.

        A fine-tuned one does nothing: each target's clone has weights of its own and needs only its own rows.
        """
        if self.finetune is None:
            self.transform(X)

    def namespace(self) -> str:
        """What besides the text determines a vector: model identity, normalisation, prompt, precision, batch rows."""
        resolved = fine_tuning.resolve_precision(self.precision, self.device)  # "auto" shares the cache of what it is
        precision = "" if resolved == "float32" else f"|precision={resolved}"  # float32 keys predate the parameter
        # Vectors before canonical batching (`_canonical_batches`) had no `rows`: their last digits vary, so not reused.
        return (
            f"{self._identity()}|normalize={bool(self.normalize)}|prompt={self.prompt!r}{precision}"
            f"|rows={self.batch_size}"
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts`: from this process's memo, else the disk cache, else the encoder (then cached)."""
        namespace = self.namespace()
        found = _MEMO.get(namespace, texts)
        todo = {t for t in texts if t not in found}
        if todo:
            start = time.perf_counter()
            cache = open_cache(self.cache_dir)
            hits = cache.get(namespace, todo)
            found.update(hits)
            _MEMO.put(namespace, hits)
            missing = sorted(todo - hits.keys())
            if missing:
                found.update(self._encode_into(missing, cache, namespace))
            log.info(
                "Embedded %d texts with %s: %d from cache, %d encoded, %.3f s",
                len(todo), self.model, len(hits), len(missing), time.perf_counter() - start,
            )  # fmt: skip
        return np.vstack([found[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    def _encode_into(self, texts: list[str], cache: Any, namespace: str) -> dict[str, np.ndarray]:
        """Encode `texts`, committing every few batches to the disk cache, so an interrupted run keeps its work."""
        from tqdm.auto import tqdm

        out: dict[str, np.ndarray] = {}
        pending: dict[str, np.ndarray] = {}
        report, done = _PROGRESS.get(), 0
        desc = f"Encoding with {Path(self.model).name}"  # the bar shows count, elapsed<remaining and rate
        shown = self.show_progress or _PROGRESS_FORCED
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not shown) as progress:
            for batch, vectors in self._encode_batches(texts):
                pending.update(zip((texts[i] for i in batch), vectors, strict=True))
                progress.update(len(batch))
                done += len(batch)
                if report is not None:
                    report(done, len(texts))
                if len(pending) >= self.batch_size * COMMIT_EVERY or len(out) + len(pending) == len(texts):
                    cache.put(namespace, self._identity(), list(pending), np.stack(list(pending.values())))
                    _MEMO.put(namespace, pending)
                    out.update(pending)
                    pending = {}
        return out

    def _encode_batches(self, texts: list[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """(indices into `texts`, float32 vectors) per forward pass, with this embedder's device and precision."""
        import torch

        encoder = load_encoder(
            self._encoder_path(), self.device, None if self.cache_dir is None else str(self.cache_dir)
        )
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        bf16 = fine_tuning.resolve_precision(self.precision, self.device) == "bfloat16"
        autocast = torch.autocast(torch.device(self.device).type, torch.bfloat16, bf16)
        floor = MIN_BATCH_TOKENS if torch.device(self.device).type == "cpu" else None  # elsewhere not measured
        batches = _canonical_batches(encoder, texts, self.prompt, self.batch_size, self.normalize, floor)
        while True:
            with autocast:  # entered per batch: the caller's code between batches runs without it
                item = next(batches, None)
            if item is None:
                return
            yield item[0], item[1].astype(np.float32, copy=False)


def _length_bucket(length: int, cap: int) -> int:
    """The padded length of a text of `length` tokens: a multiple of 8 up to 64, of 16 up to 128, and so on."""
    step = 8
    while length > 8 * step:
        step *= 2
    return max(length, min(cap, -(-length // step) * step))


def filled_rows(members: int, rows: int, bucket: int, min_tokens: int | None) -> int:
    """The rows a batch of `members` texts padded to `bucket` tokens is run with: `rows`, or on CPU fewer.

    Full batches keep `rows`; a part-filled one is filled with copies up to `min_tokens` tokens, not to `rows` rows, so
    that three texts cost a few rows each rather than three batches of 64 (experiments/RELIABILITY.md).
    """
    if min_tokens is None:
        return rows
    return min(rows, max(members, -(-min_tokens // bucket)))


def _canonical_batches(
    encoder: Any, texts: list[str], prompt: str | None, rows: int, normalize: bool, min_tokens: int | None = None
) -> Iterator[tuple[list[int], np.ndarray]]:
    """(indices, vectors) per forward pass over `texts`, each vector depending on its text alone, not its companions.

    CPU kernels round differently for small batch shapes, which moved validation F_avg with the embedding cache's
    history (RESULTS.md). So each forward pass is padded to the text's length bucket and has `rows` rows, a group's
    last batch filled up with copies to `rows` rows, or on CPU to `min_tokens` tokens (`filled_rows`); a row then
    gets the same bits whatever its companions (and thread count) (experiments/RELIABILITY.md).
    """
    from collections import defaultdict

    groups: dict[int, list[int]] = defaultdict(list)
    for first in range(0, len(texts), 1024):  # a slice at a time: preprocess pads every text to the longest
        mask = encoder.preprocess(texts[first : first + 1024], prompt=prompt)["attention_mask"]
        for i, length in enumerate(mask.sum(dim=1).tolist(), start=first):
            groups[_length_bucket(int(length), encoder.max_seq_length)].append(i)
    for bucket, members in sorted(groups.items()):
        padding = {"text": {"padding": "max_length", "max_length": bucket}}
        for start in range(0, len(members), rows):
            batch = members[start : start + rows]
            size = filled_rows(len(batch), rows, bucket, min_tokens)
            filled = [texts[i] for i in batch] + [texts[batch[0]]] * (size - len(batch))
            vectors = encoder.encode(
                filled,
                prompt=prompt,
                batch_size=size,
                normalize_embeddings=normalize,
                show_progress_bar=False,
                convert_to_numpy=True,
                processing_kwargs=padding,
            )
            yield batch, vectors[: len(batch)]


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
