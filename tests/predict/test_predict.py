"""`stance predict`: every input and output format round-trips, an interrupted run resumes, bad rows are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stance.artifact.load import load_model
from stance.artifact.pyfunc import predict_frame
from stance.data.corpora.semeval import semeval2016_task6
from stance.data.schema import to_frame
from stance.experiment import run_experiment
from stance.predict.batch import predict_files
from stance.predict.inputs import Options, PredictError
from tests.conftest import compose

# TF-IDF features: the file handling is what is tested here, so no encoder is loaded.
FAST = ["features=tfidf", "per_target=false", "bootstrap=0", "data.limit=200"]


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory) -> str:
    store = tmp_path_factory.mktemp("mlflow")
    result = run_experiment(compose(*FAST, store=store), FAST)
    return _model_path(store, result.run_id)


def _model_path(store: Path, run_id: str) -> str:
    """The logged model's local folder (a path is a model URI too, and needs no tracking URI in a subprocess)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    return mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model")


@pytest.fixture(scope="module")
def statements() -> pd.DataFrame:
    frame = to_frame(semeval2016_task6(limit=300)["test"])[["text", "target"]].reset_index(drop=True)
    return frame.assign(id=[f"s{i:04d}" for i in range(len(frame))])[["id", "text", "target"]]


def write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix
    if fmt == ".csv":
        frame.to_csv(path, index=False)
    elif fmt == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"id": str})
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype={"id": str})
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def expected(model_uri, statements) -> pd.DataFrame:
    return predict_frame(load_model(model_uri), statements[["text", "target"]], {"task": "stance"})


@pytest.mark.parametrize("source", [".csv", ".tsv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("sink", [".parquet", ".csv", ".jsonl"])
def test_every_format_round_trips(source, sink, model_uri, statements, expected, tmp_path):
    src = write(statements, tmp_path / f"in{source}")
    out = tmp_path / f"out{sink}"
    assert predict_files(model_uri, [src], out, Options(chunk_size=64), progress=False).rows == len(statements)
    got = read(out)
    assert list(got.columns) == ["id", "row", "text", "target", "label", "proba_AGAINST", "proba_FAVOR", "proba_NONE"]
    assert got["text"].tolist() == statements["text"].tolist()  # kept by default
    assert got["id"].tolist() == statements["id"].tolist()
    assert got["row"].tolist() == list(range(1, len(statements) + 1))
    assert got["label"].tolist() == expected["label"].tolist()
    assert got["proba_FAVOR"].to_numpy() == pytest.approx(expected["proba_FAVOR"].to_numpy(), abs=1e-6)
    assert not Path(f"{out}.parts").exists()


def test_several_inputs_fixed_target_and_row_numbers(model_uri, statements, tmp_path):
    first = write(statements[["text"]].head(10), tmp_path / "a.csv")
    second = write(statements[["text"]].iloc[10:15], tmp_path / "b.parquet")
    out = tmp_path / "out.parquet"
    predict_files(model_uri, [first, second], out, Options(target="Atheism"), progress=False)
    got = pd.read_parquet(out)
    assert got["file"].tolist() == [str(first)] * 10 + [str(second)] * 5
    assert got["row"].tolist() == [*range(1, 11), *range(1, 6)]
    frame = statements[["text"]].head(15).assign(target="Atheism")
    assert got["label"].tolist() == predict_frame(load_model(model_uri), frame)["label"].tolist()


def test_keep_columns_copies_the_input_columns_asked_for(model_uri, statements, tmp_path):
    src = write(statements.assign(label="FAVOR", source="twitter"), tmp_path / "in.jsonl")
    out = tmp_path / "out.csv"
    predict_files(model_uri, [src], out, Options(keep_columns=("source", "label", "id")), progress=False)
    got = read(out)
    assert list(got.columns)[:5] == ["id", "row", "source", "input_label", "label"]  # the gold label kept apart
    assert set(got["source"]) == {"twitter"} and set(got["input_label"]) == {"FAVOR"}
    predict_files(model_uri, [src], out, Options(target="Atheism"), progress=False)
    assert list(read(out).columns)[:4] == ["id", "row", "text", "label"]  # a fixed target: no target column read
    predict_files(model_uri, [src], out, Options(keep_columns=()), progress=False)
    assert list(read(out).columns)[:3] == ["id", "row", "label"]
    with pytest.raises(PredictError, match=r"in\.jsonl has no column 'tweet_url' .* with --keep-columns"):
        predict_files(model_uri, [src], out, Options(keep_columns=("tweet_url",)), progress=False)


def test_other_column_names(model_uri, statements, tmp_path):
    renamed = statements.rename(columns={"text": "Tweet", "target": "Topic", "id": "tweet_id"})
    out = tmp_path / "out.jsonl"
    opts = Options(text_column="Tweet", target_column="Topic", id_column="tweet_id")
    predict_files(model_uri, [write(renamed, tmp_path / "in.csv")], out, opts, progress=False)
    assert read(out)["id"].tolist() == statements["id"].tolist()


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_run_resumes_without_redoing_finished_chunks(model_uri, statements, tmp_path, expected, caplog):
    src = write(statements, tmp_path / "in.csv")
    out = tmp_path / "out.parquet"
    opts = Options(chunk_size=50)  # 300 rows: six chunks

    def stop_after_third(chunk: int) -> None:
        if chunk == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        predict_files(model_uri, [src], out, opts, progress=False, on_chunk=stop_after_third)
    parts = tmp_path / "out.parquet.parts"
    assert sorted(p.name for p in parts.glob("part-*")) == [f"part-0000-000000{i}.parquet" for i in range(3)]
    assert not out.exists()

    with pytest.raises(PredictError, match=r"another options.*--restart"):
        predict_files(model_uri, [src], out, Options(chunk_size=60), progress=False)

    redone: list[int] = []
    predict_files(model_uri, [src], out, opts, progress=False, on_chunk=redone.append)
    assert redone == [3, 4, 5]
    assert "Resuming" in caplog.text and "3 chunk(s) already labelled" in caplog.text
    got = pd.read_parquet(out)
    assert got["row"].tolist() == list(range(1, 301))
    assert got["label"].tolist() == expected["label"].tolist()
    assert not parts.exists()


def test_restart_discards_an_unfinished_run(model_uri, statements, tmp_path):
    src = write(statements.head(100), tmp_path / "in.csv")
    out = tmp_path / "out.csv"

    def stop(chunk: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        predict_files(model_uri, [src], out, Options(chunk_size=50), progress=False, on_chunk=stop)
    redone: list[int] = []
    predict_files(model_uri, [src], out, Options(chunk_size=25), restart=True, progress=False, on_chunk=redone.append)
    assert redone == [0, 1, 2, 3] and len(read(out)) == 100


def _bad_files(tmp_path: Path, statements: pd.DataFrame) -> dict[str, tuple[Path, str]]:
    """Bad inputs and the message each must give."""
    good = statements.head(6)
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing column"] = (
        write(good.drop(columns="target"), tmp_path / "no_target.csv"),
        r"no_target\.csv has no column 'target' \(its columns: id, text\)\. .*--target-column",
    )
    cases["empty text csv"] = (
        write(good.assign(text=["a", "b", "  ", "d", "e", "f"]), tmp_path / "empty.csv"),
        r"empty\.csv, row 3 \(line 4\): column 'text' is empty",
    )
    cases["empty target jsonl"] = (
        write(good.assign(target=["x", "x", "x", "x", "", "x"]), tmp_path / "empty.jsonl"),
        r"empty\.jsonl, row 5 \(line 5\): column 'target' is empty",
    )
    cases["null text parquet"] = (
        write(good.assign(text=["a", None, "c", "d", "e", "f"]), tmp_path / "null.parquet"),
        r"null\.parquet, row 2: column 'text' is empty",
    )
    csv_bytes = write(good, tmp_path / "latin.csv").read_bytes().splitlines(keepends=True)
    csv_bytes[4] = csv_bytes[4].replace(b",", b",caf\xe9 ", 1)  # row 4: a cp1252 byte in a UTF-8 file
    (tmp_path / "latin.csv").write_bytes(b"".join(csv_bytes))
    cases["undecodable csv"] = (
        tmp_path / "latin.csv",
        r"latin\.csv, row 4 \(line 5\): byte \d+ \(b'\\xe9'\) is not utf-8\. .*--encoding",
    )
    jsonl_bytes = write(good, tmp_path / "latin.jsonl").read_bytes().splitlines(keepends=True)
    jsonl_bytes[1] = jsonl_bytes[1].replace(b'"text":"', b'"text":"\xff', 1)
    (tmp_path / "latin.jsonl").write_bytes(b"".join(jsonl_bytes))
    cases["undecodable jsonl"] = (tmp_path / "latin.jsonl", r"latin\.jsonl, row 2 \(line 2\): byte \d+ \(b'\\xff'\)")
    (tmp_path / "ragged.csv").write_text('id,text,target\n1,"fine",Atheism\n2,un,quoted,comma,Atheism\n')
    cases["ragged csv"] = (tmp_path / "ragged.csv", r"ragged\.csv, row 2 \(line 3\): 5 fields, the header has 3")
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "target": "b"}\n{"text": "a", "target": \n')
    cases["broken jsonl"] = (tmp_path / "broken.jsonl", r"broken\.jsonl, row 2 \(line 2\): not valid JSON")
    return cases


CASES = [
    "missing column",
    "empty text csv",
    "empty target jsonl",
    "null text parquet",
    "undecodable csv",
    "undecodable jsonl",
    "ragged csv",
    "broken jsonl",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_naming_file_and_row(case, model_uri, statements, tmp_path):
    path, message = _bad_files(tmp_path, statements)[case]
    out = tmp_path / "out.parquet"
    with pytest.raises(PredictError, match=message):
        predict_files(model_uri, [path], out, progress=False)
    assert not out.exists() and not Path(f"{out}.parts").exists()  # nothing was labelled


def test_bad_row_late_in_a_later_file_fails_before_any_labelling(model_uri, statements, tmp_path):
    good = write(statements, tmp_path / "good.csv")
    late = write(statements.assign(text=[*statements["text"][:-1], ""]), tmp_path / "late.parquet")
    labelled: list[int] = []
    with pytest.raises(PredictError, match=rf"late\.parquet, row {len(statements)}: column 'text' is empty"):
        predict_files(model_uri, [good, late], tmp_path / "o.csv", Options(chunk_size=50), on_chunk=labelled.append)
    assert labelled == []


def test_cli_reports_one_line_and_exit_1(model_uri, statements, tmp_path):
    path, _ = _bad_files(tmp_path, statements)["empty text csv"]
    cmd = [sys.executable, "-m", "stance.cli", "predict", model_uri, str(path), "--output", str(tmp_path / "o.csv")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "empty.csv, row 3 (line 4)" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_cli_labels_a_file(model_uri, statements, expected, tmp_path):
    src = write(statements, tmp_path / "in.jsonl")
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "stance.cli", "predict", model_uri, str(src), "-o", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(statements)} rows labelled into {out}" in done.stderr
    assert read(out)["label"].tolist() == expected["label"].tolist()


def test_predict_command_sends_freed_large_blocks_back_to_the_os():
    # In child processes: the setting is process-wide. mallinfo2 counts bytes held in mmapped blocks (glibc >= 2.33).
    code = """
import ctypes, ctypes.util, sys
import numpy as np
from stance.predict.batch import map_large_allocations

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
set_ = sys.argv[1] == "set" and map_large_allocations()
freed = np.ones(30 << 20, dtype=np.uint8)
del freed  # by default glibc now serves blocks up to 30 MB from its heap, which keeps them after they are freed
before = libc.mallinfo2().hblkhd
block = np.ones(12 << 20, dtype=np.uint8)  # 12 MB, like a batch's activations
print(set_, (libc.mallinfo2().hblkhd - before) >> 20)
"""
    mapped = {}
    for mode in ("default", "set"):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        mapped[mode] = done.stdout.split()
    assert mapped == {"default": ["False", "0"], "set": ["True", "12"]}


def _kb(path: Path) -> int:
    """The kilobytes a file takes on a tmpfs: whole 4 kB pages."""
    return -(-path.stat().st_size // 4096) * 4


@pytest.mark.slow
@pytest.mark.parametrize("sink", [".csv", ".parquet"])
def test_a_full_disk_keeps_the_finished_chunks_and_the_same_command_finishes_once_space_is_freed(
    sink, model_uri, statements, tmp_path, small_disk
):
    src = write(statements, tmp_path / "in.csv")
    opts = Options(chunk_size=50)  # 300 rows: six chunks
    roomy = tmp_path / "roomy" / f"out{sink}"
    roomy.parent.mkdir()

    def stop_after_last(chunk: int) -> None:
        if chunk == 5:
            raise Interrupt

    with pytest.raises(Interrupt):  # every part written, none assembled: their sizes size the small disk below
        predict_files(model_uri, [src], roomy, opts, progress=False, on_chunk=stop_after_last)
    manifest, *parts = [_kb(p) for p in sorted(Path(f"{roomy}.parts").iterdir())]
    predict_files(model_uri, [src], roomy, opts, progress=False)

    disk = small_disk("out", manifest + parts[0] + parts[1])  # two chunks fit, the third does not
    out = disk / f"out{sink}"
    cmd = [sys.executable, "-m", "stance.cli", "predict", model_uri, str(src), "-o", str(out), "--chunk-size", "50",
           "--no-progress"]  # fmt: skip

    def predict() -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == (1 if errors else 0) and len(errors) <= 1, done.stderr[-3000:]
        return errors[0] if errors else ""

    error = predict()
    assert f"No space left on device in {disk} while labelling. " in error and f"MB free in {disk}." in error
    assert f"2 of 6 chunk(s) are finished and kept in {out}.parts" in error and "run the same command again" in error
    kept = ["manifest.json", "part-0000-0000000.parquet", "part-0000-0000001.parquet"]
    assert sorted(p.name for p in Path(f"{out}.parts").iterdir()) == kept  # no half-written part

    subprocess.run(["mount", "-o", f"remount,size={manifest + sum(parts) + _kb(roomy) - 4}k", str(disk)], check=True)
    error = predict()  # every chunk fits now, the output one page short
    assert f"No space left on device in {disk} while writing {out.name}. " in error and f"MB free in {disk}." in error
    assert f"All 6 chunk(s) are labelled and kept in {out}.parts" in error and "only writes the output" in error
    assert sorted(p.name for p in disk.iterdir()) == [f"{out.name}.parts"]  # no half-written output
    assert len(list(Path(f"{out}.parts").glob("part-*.parquet"))) == 6

    subprocess.run(["mount", "-o", "remount,size=2m", str(disk)], check=True)  # space freed
    assert predict() == ""
    assert out.read_bytes() == roomy.read_bytes()
    assert sorted(p.name for p in disk.iterdir()) == [out.name, f"{out.name}.summary.json"]  # no parts left


@pytest.mark.slow
def test_cli_bar_moves_within_the_first_chunk_and_fallback_rows_are_counted_on_console_and_in_the_summary(
    logged_model, tmp_path
):
    """Issue 29: the bar stayed at 0 % for a whole chunk, and rows of unseen targets went to the fallback unsaid."""
    import json
    import os
    import re

    from stance.models.per_target import PerTarget
    from stance.models.walk import estimators

    router = next(p for p in estimators(load_model(str(logged_model))) if isinstance(p, PerTarget))
    test = to_frame(semeval2016_task6(limit=300)["test"])
    seen = test[test["target"].isin(list(router.estimators_))][["text", "target"]].head(200)
    unseen = seen.head(60).assign(target="NATO expansion to the east")  # no SemEval model has this target
    src = write(pd.concat([seen, unseen], ignore_index=True), tmp_path / "statements.csv")
    out = tmp_path / "labelled.csv"
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache")}  # a cold cache: the chunk's texts are encoded
    cmd = [sys.executable, "-m", "stance.cli", "predict", str(logged_model), str(src), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = [int(n) for n in re.findall(r"Predicting:[^|]*\|[^|]*\| *(\d+)/260", done.stderr)]
    assert [n for n in shown if 0 < n < 260], done.stderr[-3000:]  # one chunk of 260 rows, moving while it is encoded
    assert shown[-1] == 260
    warning = "warning: 60 of 260 rows have a target without a model of its own (unseen in training, or too few "
    warning += "training rows) and were labelled by the joint fallback model: 'NATO expansion to the east' (60)."
    assert warning in done.stderr.splitlines()
    assert f"260 rows labelled into {out} (summary: {out}.summary.json)" in done.stderr
    assert "Downloading artifacts" not in done.stderr and "Loading weights" not in done.stderr
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["rows"] == 260 and summary["kept_columns"] == ["text", "target"]
    assert summary["fallback_rows"] == 60 and summary["fallback_targets"] == {"NATO expansion to the east": 60}
    assert read(out)["target"].tolist()[-60:] == ["NATO expansion to the east"] * 60
