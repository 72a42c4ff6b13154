"""The SemEval reader on the real files, and one clear error per kind of bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from stance.data.corpora.semeval import semeval2016_task6
from stance.data.schema import DataError, to_frame

SEMEVAL_FILES = [
    "trialdata-all-annotations.txt",
    "trainingdata-all-annotations.txt",
    "testdata-taskA-all-annotations.txt",
]


def test_semeval_counts_match_source_md(data_root):
    data = semeval2016_task6(root=str(data_root))
    frames = {split: to_frame(ds) for split, ds in data.items()}
    train_all = Counter(frames["train"]["label"]) + Counter(frames["validation"]["label"])
    # SOURCE.md: trial 53/22/25 + training 1,342/731/741 (AGAINST/FAVOR/NONE); test A 715/304/230.
    assert train_all == {"AGAINST": 1395, "FAVOR": 753, "NONE": 766}
    assert Counter(frames["test"]["label"]) == {"AGAINST": 715, "FAVOR": 304, "NONE": 230}
    per_target = Counter(frames["train"]["target"]) + Counter(frames["validation"]["target"])
    assert per_target["Atheism"] == 513 and per_target["Hillary Clinton"] == 689
    assert data["train"].features["label"].names == ["AGAINST", "FAVOR", "NONE"]
    assert not frames["test"]["text"].str.contains("#SemST").any()
    assert "‘" in " ".join(frames["train"]["text"]) + " ".join(frames["validation"]["text"]), "cp1252 quotes decoded"


def test_validation_split_is_stratified_and_seeded(data_root):
    a = to_frame(semeval2016_task6(root=str(data_root), seed=1)["validation"])
    b = to_frame(semeval2016_task6(root=str(data_root), seed=1)["validation"])
    assert a["id"].tolist() == b["id"].tolist()
    assert len(a) == 292  # 10% of 2,914
    assert Counter(a["target"])["Atheism"] in (51, 52)


def test_task_b_is_trump_test_only(data_root):
    data = semeval2016_task6(root=str(data_root), task="B")
    assert list(data) == ["test"] and data["test"].num_rows == 707
    assert set(data["test"]["target"]) == {"Donald Trump"}


@pytest.fixture
def corpus_copy(tmp_path, data_root) -> Path:
    folder = tmp_path / "semeval2016_task6"
    folder.mkdir()
    for name in SEMEVAL_FILES:
        shutil.copy(data_root / "semeval2016_task6" / name, folder / name)
    return tmp_path


def test_missing_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("STANCE_DATA", raising=False)
    with pytest.raises(DataError, match="STANCE_DATA"):
        semeval2016_task6()
    with pytest.raises(DataError, match="does not exist"):
        semeval2016_task6(root=str(tmp_path / "nowhere"))


def test_missing_file_names_expected_files(corpus_copy):
    (corpus_copy / "semeval2016_task6" / SEMEVAL_FILES[2]).unlink()
    with pytest.raises(DataError, match="testdata-taskA-all-annotations.txt") as err:
        semeval2016_task6(root=str(corpus_copy))
    assert "Expected these files" in str(err.value)


def test_wrong_column_is_named(corpus_copy):
    path = corpus_copy / "semeval2016_task6" / SEMEVAL_FILES[0]
    path.write_bytes(path.read_bytes().replace(b"\tStance\t", b"\tPosition\t", 1))
    with pytest.raises(DataError, match=r"trialdata-all-annotations.txt: missing column\(s\) \['Stance'\]"):
        semeval2016_task6(root=str(corpus_copy))


def test_unknown_label_names_file_line_and_column(corpus_copy):
    path = corpus_copy / "semeval2016_task6" / SEMEVAL_FILES[2]
    lines = path.read_bytes().split(b"\r\n")
    lines[5] = (
        lines[5]
        .replace(b"\tAGAINST\t", b"\tMAYBE\t")
        .replace(b"\tFAVOR\t", b"\tMAYBE\t")
        .replace(b"\tNONE\t", b"\tMAYBE\t")
    )
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DataError, match=r"line 6, column 'Stance': unknown label 'MAYBE'"):
        semeval2016_task6(root=str(corpus_copy))


def test_undecodable_file_names_offset(corpus_copy):
    path = corpus_copy / "semeval2016_task6" / SEMEVAL_FILES[0]
    path.write_bytes(path.read_bytes() + b"\x81\r\n")  # 0x81 is undefined in cp1252
    with pytest.raises(DataError, match="offset"):
        semeval2016_task6(root=str(corpus_copy))
