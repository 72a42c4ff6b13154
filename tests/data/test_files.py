"""A researcher's own files: formats, encodings, multi-target rows, validation, and one clear error per problem."""

from __future__ import annotations

import csv
import json
import logging

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stance.data.files import files, hub, read_file
from stance.data.schema import DataError, split_table, to_frame, validate

ROWS = [
    ("Tweet", "Target 1", "Stance 1", "Target 2", "Stance 2"),
    ("Trump will make America great again", "Donald Trump", "FAVOR", "Hillary Clinton", "AGAINST"),
    ("I'm with her, proud to vote", "Hillary Clinton", "FAVOR", "Donald Trump", "AGAINST"),
    ("Debate night, who is watching?", "Donald Trump", "NONE", "Hillary Clinton", "NONE"),
    ("Nobody should vote for Trump", "Donald Trump", "AGAINST", "", ""),
]


def write_csv(path, rows, encoding="utf-8"):
    pd.DataFrame(rows[1:], columns=rows[0]).to_csv(path, index=False, encoding=encoding)
    return str(path)


def multi_target(tmp_path, name="train.csv", rows=ROWS):
    return write_csv(tmp_path / name, rows)


def test_multi_target_rows_become_one_row_per_pair(tmp_path, caplog):
    path = multi_target(tmp_path)
    with caplog.at_level(logging.WARNING):
        data = files(
            {"train": path, "test": path},
            columns={"text": "Tweet"},
            targets={"Target 1": "Stance 1", "Target 2": "Stance 2"},
            validation_size=0,
        )
    test = to_frame(data["test"])
    assert len(test) == 7 and set(test["target"]) == {"Donald Trump", "Hillary Clinton"}
    assert data["test"].features["label"].names == ["AGAINST", "FAVOR", "NONE"]
    assert "1 blank target cells" in caplog.text


def test_formats_and_split_column(tmp_path):
    frame = pd.DataFrame(
        {
            "text": ["a b", "c d", "e f", "g h"],
            "label": ["x", "y", "x", "y"],
            "part": ["train", "train", "test", "test"],
        }
    )
    frame.to_json(tmp_path / "all.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "all.parquet")
    frame.to_csv(tmp_path / "all.tsv", sep="\t", index=False)
    for name in ("all.jsonl", "all.parquet", "all.tsv"):
        data = files(str(tmp_path / name), split_column="part", validation_size=0)
        assert sorted(data) == ["test", "train"] and data["train"].num_rows == 2
        assert to_frame(data["test"])["target"].tolist() == ["", ""]


def test_label_map_keeps_original(tmp_path):
    rows = [("text", "target", "label"), ("x is good", "x", "SUPPORT"), ("x is bad", "x", "UNDERMINE")]
    data = files({"test": write_csv(tmp_path / "t.csv", rows)}, label_map={"SUPPORT": "FAVOR", "UNDERMINE": "AGAINST"})
    test = to_frame(data["test"])
    assert test["label"].tolist() == ["FAVOR", "AGAINST"]
    assert test["original_label"].tolist() == ["SUPPORT", "UNDERMINE"]


def test_missing_column_names_file_and_fix(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("Tweet", "Stance"), ("hello", "FAVOR")])
    with pytest.raises(DataError, match=r"t.csv: missing column\(s\) \['text', 'label'\].*data.columns"):
        files({"test": path})


def test_unknown_label_names_row_and_column(tmp_path):
    rows = [("text", "target", "Stance"), ("a", "t", "FAVOR"), ("b", "t", "MAYBE")]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r"t.csv:3, column 'Stance': unknown label 'MAYBE'"):
        files({"test": path}, columns={"label": "Stance"}, labels=["AGAINST", "FAVOR", "NONE"])


def test_empty_text_names_row(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("text", "target", "label"), ("a", "t", "FAVOR"), ("   ", "t", "NONE")])
    with pytest.raises(DataError, match=r"t.csv:3, column 'text': empty text"):
        files({"test": path})


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        files({"test": str(tmp_path / "nope.csv")})
    (tmp_path / "x.xlsx").write_text("?")
    with pytest.raises(DataError, match="unknown format"):
        files({"test": str(tmp_path / "x.xlsx")})


def test_encodings_given_detected_and_wrong(tmp_path, caplog):
    rows = [("text", "target", "label")] + [("“Curly” quotes — café", "t", "FAVOR")] * 3
    path = write_csv(tmp_path / "cp.csv", rows, encoding="cp1252")
    assert to_frame(files({"test": path}, encoding="cp1252")["test"])["text"][0] == "“Curly” quotes — café"
    with caplog.at_level(logging.WARNING):
        files({"test": path})  # detected, with a warning naming the offset
    assert "not UTF-8" in caplog.text
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DataError, match=r"bad.csv: byte b'\\xff' at offset 0 is not valid utf-8.*data.encoding"):
        files({"test": str(bad)}, encoding="utf-8")


ZH = [f"气候变化是真实存在的问题，我们必须立即行动…第{i}条" for i in range(30)]
JA = [f"気候変動は本当の問題です。今すぐ行動しなければなりません（その{i}）" for i in range(30)]
ELLIPSIS = [f"Tweet {i} about the climate… and more to come…" for i in range(30)]


def write_split(path, texts, encoding):
    rows = [("text", "target", "label"), *((t, "Climate Change is a Real Concern", "FAVOR") for t in texts)]
    return write_csv(path, rows, encoding=encoding)


def texts_of(data, split):
    return to_frame(data[split])["text"].tolist()


def test_one_encoding_is_detected_for_all_files_of_a_dataset(tmp_path, caplog):
    """GB18030: the English test file alone (only `…` not ASCII) is ambiguous; with the Chinese train file it is not."""
    paths = {
        "train": write_split(tmp_path / "train.csv", ZH, "gb18030"),
        "test": write_split(tmp_path / "test.csv", ELLIPSIS, "gb18030"),
    }
    with caplog.at_level(logging.WARNING):
        data = files(paths, validation_size=0)
    assert texts_of(data, "train") == ZH and texts_of(data, "test") == ELLIPSIS
    assert caplog.text.count("reading them all as gb18030") == 1
    paths = {
        "train": write_split(tmp_path / "ja.csv", JA, "shift_jis"),
        "test": write_split(tmp_path / "ja2.csv", JA[:5], "shift_jis"),
    }
    data = files(paths, validation_size=0)
    assert texts_of(data, "train") == JA and texts_of(data, "test") == JA[:5]


def test_an_ambiguous_encoding_stops_and_names_the_candidates(tmp_path):
    paths = {
        "train": write_split(tmp_path / "train.csv", ELLIPSIS, "gb18030"),
        "test": write_split(tmp_path / "test.csv", ELLIPSIS[:5], "gb18030"),
    }
    with pytest.raises(
        DataError,
        match=r"ambiguous: at train.csv:2, .*gb18030 .*reads 'Tweet 0 about the climate… and.*Set data.encoding",
    ):
        files(paths, validation_size=0)
    assert texts_of(files(paths, validation_size=0, encoding="gb18030"), "test") == ELLIPSIS[:5]
    western = ["“Naïve” café owners — résumé attached"] * 20
    paths = {"train": write_split(tmp_path / "w.csv", western, "cp1252")}
    with pytest.raises(DataError, match=r"cp1250 reads '“Naďve” café.*; cp1252 \(or .*\) reads '“Naïve” café"):
        files(paths, validation_size=0)
    assert texts_of(files(paths, validation_size=0, encoding="cp1252"), "train") == western


def test_files_in_two_encodings_are_an_error(tmp_path):
    paths = {
        "train": write_split(tmp_path / "train.csv", ["Tweet about the climate…"] * 10, "utf-8"),
        "test": write_split(tmp_path / "test.csv", ["“Naïve” café owners"] * 10, "cp1252"),
    }
    with pytest.raises(DataError, match=r"different encodings: .*train.csv UTF-8, .*test.csv not"):
        files(paths, validation_size=0)


def test_empty_and_header_only_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.csv is empty \(no header, no rows\)"):
        files({"train": str(tmp_path / "empty.csv")})
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataError, match=r"blank.csv has no header and no rows"):
        files({"train": str(tmp_path / "blank.csv")})
    header = write_csv(tmp_path / "header.csv", [("text", "target", "label")])
    with pytest.raises(DataError, match=r"header.csv has a header but no rows"):
        files({"train": header, "test": write_split(tmp_path / "test.csv", ["a tweet"], "utf-8")})


def test_an_unknown_stance_label_is_an_error_with_the_closest_suggested(tmp_path):
    rows = [("text", "target", "Stance"), ("a", "t", "FAVOR"), ("b", "t", "AGAINST"), ("c", "t", "favour")]
    path = write_csv(tmp_path / "t.csv", rows)
    expected = r"t.csv:4, column 'Stance': unknown label 'favour' \(did you mean 'FAVOR'\?\).*data.label_map"
    with pytest.raises(DataError, match=expected):
        files({"test": path}, columns={"label": "Stance"}, task="stance")
    mapped = files({"test": path}, columns={"label": "Stance"}, label_map={"favour": "FAVOR"}, task="stance")
    assert to_frame(mapped["test"])["label"].tolist() == ["FAVOR", "AGAINST", "FAVOR"]
    own = files({"test": path}, columns={"label": "Stance"}, labels=["AGAINST", "FAVOR", "favour"], task="stance")
    assert own["test"].features["label"].names == ["AGAINST", "FAVOR", "favour"]
    assert files({"test": path}, columns={"label": "Stance"}, task="topic")["test"].num_rows == 3  # any labels


def test_a_class_too_small_to_split_is_one_clear_error(tmp_path):
    texts = [f"tweet number {i}" for i in range(40)]
    rows = [
        ("text", "target", "label"),
        *((t, f"target {i % 2}", "FAVOR" if i % 2 else "AGAINST") for i, t in enumerate(texts)),
    ]
    with pytest.raises(
        DataError,
        match=r"Label 'NONE' has 1 row \(t.csv:42\), too few for both training and a validation split\. "
        r".*validation_size=0\.$",
    ):
        files({"train": write_csv(tmp_path / "t.csv", [*rows, ("odd one", "target 0", "NONE")])})
    # One (target, label) pair with a single row, but every label with several: stratified by label, and said so.
    data = files({"train": write_csv(tmp_path / "u.csv", [*rows, ("odd one", "target 9", "FAVOR")])})
    assert data["train"].num_rows == 36 and data["validation"].num_rows == 5
    assert data.report.notes == [
        "validation: 5 of 41 rows held out, stratified by label only (a (target, label) pair has a single row)"
    ]


def test_a_class_smaller_than_the_classifiers_folds_is_one_clear_error(make_cfg, tmp_path):
    from stance.experiment import train

    texts = [f"tweet number {i}" for i in range(30)]
    rows = [("text", "target", "label"), *((t, "t", ["AGAINST", "FAVOR"][i % 2]) for i, t in enumerate(texts))]
    train_path = write_csv(tmp_path / "train.csv", [*rows, ("rare", "t", "NONE"), ("rarer", "t", "NONE")])
    cfg = make_cfg(
        "data=files",
        f"data.paths={{train: {train_path}, validation: {train_path}}}",
        "features=tfidf",
        "classifier=svm",
    )
    with pytest.raises(
        DataError, match=r"Label 'NONE' has 2 training row\(s\), fewer than the 3 cross-validation folds"
    ):
        train(cfg)


def test_validate_reports_duplicates_and_leakage_and_drops_only_when_asked():
    train = pd.DataFrame(
        {"text": ["a", "a", "b", "c"], "target": ["t"] * 4, "label": ["X", "Y", "X", "X"], "id": list("1234")}
    )
    test = pd.DataFrame({"text": ["c", "d"], "target": ["t", "t"], "label": ["X", "X"], "id": ["5", "6"]})
    kept, report = validate({"train": train, "test": test})
    assert len(kept["train"]) == 4 and not report.dropped
    assert any("1 duplicate (text, target) rows (1 with conflicting labels), e.g. 2" in w for w in report.warnings)
    assert any("1 texts also occur in test" in w for w in report.warnings)
    dropped, report = validate({"train": train, "test": test}, drop_duplicates=True, drop_leaked=True)
    assert dropped["train"]["text"].tolist() == ["a", "b"]
    assert report.dropped == {"duplicates/train": 1, "leaked/train": 1}


def test_hub_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Cannot load Hub dataset 'nobody/no-such-dataset'.*data=files"):
        hub("nobody/no-such-dataset")


SENTENCES = [f"sentence {i} about the topic" for i in range(40)]
STANCES = ["pro", "con", "neutral", "pro"] * 10


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return str(path)


def test_hub_reads_a_local_dataset_with_string_labels_mapped_and_limited(tmp_path):
    rows = [{"sentence": t, "topic": "school uniforms", "stance": s} for t, s in zip(SENTENCES, STANCES, strict=True)]
    files_ = {
        "train": write_jsonl(tmp_path / "train.jsonl", rows[:30]),
        "test": write_jsonl(tmp_path / "t.jsonl", rows[30:]),
    }
    options = {"columns": {"text": "sentence", "target": "topic", "label": "stance"}, "cache_dir": str(tmp_path / "hf")}
    mapping = {"pro": "FAVOR", "con": "AGAINST", "neutral": "NONE"}
    data = hub("json", data_files=files_, label_map=mapping, limit=5, task="stance", **options)
    assert {split: ds.num_rows for split, ds in data.items()} == {"train": 5, "validation": 3, "test": 5}
    assert data["test"].features["label"].names == ["AGAINST", "FAVOR", "NONE"]
    test = to_frame(data["test"])
    assert [mapping[o] for o in test["original_label"]] == test["label"].tolist()
    assert set(test["target"]) == {"school uniforms"}
    rows[2]["stance"] = "favour"
    write_jsonl(tmp_path / "train.jsonl", rows[:30])
    expected = r"json train row 2, column 'stance': unknown label 'favour' \(did you mean 'FAVOR'\?\)"
    with pytest.raises(DataError, match=expected):
        hub("json", data_files=files_, label_map=mapping, task="stance", **options)


def test_hub_reads_class_indices_as_their_names(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["AGAINST", "FAVOR", "NONE"])})
    Dataset.from_dict({"text": SENTENCES[:6], "label": [0, 1, 2, 2, 1, 0]}, features=features).to_parquet(
        tmp_path / "test.parquet"
    )
    data = hub("parquet", data_files={"test": str(tmp_path / "test.parquet")}, cache_dir=str(tmp_path / "hf"))
    assert to_frame(data["test"])["label"].tolist() == ["AGAINST", "FAVOR", "NONE", "NONE", "FAVOR", "AGAINST"]


def test_data_hub_trains_end_to_end_on_local_files(make_cfg, tmp_path):
    from stance.experiment import train

    rows = [{"text": t, "label": s} for t, s in zip(SENTENCES, STANCES, strict=True)]
    train_file, test_file = write_jsonl(tmp_path / "a.jsonl", rows[:30]), write_jsonl(tmp_path / "b.jsonl", rows[30:])
    cfg = make_cfg(
        "data=hub", "data.path=json", f"data.data_files={{train: {train_file}, test: {test_file}}}",
        "data.label_map={pro: FAVOR, con: AGAINST, neutral: NONE}", f"+data.cache_dir={tmp_path}/hf",
        "features=tfidf", "per_target=false", "bootstrap=0",
    )  # fmt: skip
    result = train(cfg)
    assert len(result.frames["test"]) == 10 and "test/f_avg" in result.evaluation.metrics


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(CELL, CELL, st.sampled_from(["FAVOR", "AGAINST", "NONE"])), min_size=1, max_size=8))
def test_reader_never_crashes_nor_loses_rows(tmp_path, rows):
    """Arbitrary unicode, quotes, separators and empty cells: every row comes back, or one DataError."""
    for fmt, suffix in (("csv", ".csv"), ("tsv", ".tsv"), ("jsonl", ".jsonl")):
        path = tmp_path / f"f{suffix}"
        frame = pd.DataFrame(rows, columns=["text", "target", "label"])
        if fmt == "jsonl":
            path.write_text("\n".join(json.dumps(r) for r in frame.to_dict(orient="records")), encoding="utf-8")
        else:
            # Quoted: pandas leaves a bare carriage return unquoted, which any CSV reader takes for a line break.
            frame.to_csv(path, sep="," if fmt == "csv" else "\t", index=False, quoting=csv.QUOTE_ALL)
        try:
            data = files({"test": str(path)})
        except DataError:
            continue
        assert data["test"].num_rows == len(rows)
        assert to_frame(data["test"])["text"].tolist() == frame["text"].tolist()
        assert read_file(path).shape[0] == len(rows)


def test_split_table_counts_rows_per_split_and_label_or_rows_alone_for_label_sets():
    frames = {"train": pd.DataFrame({"label": ["FAVOR", "NONE", "FAVOR"]}), "test": pd.DataFrame({"label": ["NONE"]})}
    assert split_table(frames).splitlines() == [
        "       FAVOR  NONE  total",
        "train      2     1      3",
        "test       0     1      1",
    ]
    assert split_table({"train": pd.DataFrame({"label": [["a", "b"], ["a"]]})}).splitlines() == [
        "       rows",
        "train     2",
    ]
