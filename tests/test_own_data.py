"""A researcher's own single CSV (issue 29): `data=files data.paths=mine.csv` splits it, says how, and trains;
`stance data validate` gives training's verdict; an input error leaves no MLflow run behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from stance.cli import app
from stance.data.files import files
from stance.data.schema import DataError, to_frame
from tests.helpers import runs, train_command

# What `python -m stance.train data=files data.paths=mine.csv` and `stance data validate mine.csv` both print.
SPLIT = [
    "test: 10 of 48 rows held out, stratified by target x label",
    "validation: 4 of 38 rows held out, stratified by label only (4 rows cannot hold one of each of the 6 (target, "
    "label) pairs)",
]
TABLE = [
    "            AGAINST  FAVOR  NONE  total",
    "train            11     12    11     34",
    "validation        2      1     1      4",
    "test              3      3     4     10",
]


@pytest.fixture(scope="module")
def tweets(data_root) -> pd.DataFrame:
    """48 real SemEval tweets: 8 per (target, label) for two targets, shuffled, as a user's own annotations."""
    from stance.config import load_data

    train = to_frame(load_data("semeval2016_task6")["train"])
    train = train[train["target"].isin(["Atheism", "Hillary Clinton"])]
    rows = train.groupby(["target", "label"]).head(8)[["text", "target", "label"]]
    return rows.sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.fixture
def mine(tmp_path, tweets) -> Path:
    path = tmp_path / "mine.csv"
    tweets.to_csv(path, index=False)
    return path


def test_one_file_is_split_in_three_stratified_and_says_how(mine):
    data = files(str(mine))
    assert data.report.notes == SPLIT
    assert {split: ds.num_rows for split, ds in data.items()} == {"train": 34, "validation": 4, "test": 10}
    test = to_frame(data["test"])
    assert test.groupby(["target", "label"]).size().min() >= 1  # every (target, label) pair is tested


def test_the_users_second_try_now_carves_validation_by_label(mine):
    """`{train: mine.csv}` had failed with 'test_size = 5 should be greater or equal to the number of classes = 6'."""
    data = files({"train": str(mine)})
    assert data.report.notes == [
        "validation: 5 of 48 rows held out, stratified by label only (5 rows cannot hold one of each of the 6 "
        "(target, label) pairs)"
    ]
    assert sorted(to_frame(data["validation"])["label"].value_counts()) == [1, 2, 2]


def test_small_data_gets_one_row_per_label_and_too_large_a_split_gets_the_number_to_use(tmp_path, tweets):
    nine = tmp_path / "nine.csv"
    tweets[tweets["target"] == "Atheism"].groupby("label").head(3).to_csv(nine, index=False)
    data = files(str(nine))
    assert {split: ds.num_rows for split, ds in data.items()} == {"train": 3, "validation": 3, "test": 3}
    assert data.report.notes == [
        "test: 3 of 9 rows held out, stratified by label; raised from 2 to 3 rows, one per label",
        "validation: 3 of 6 rows held out, stratified by label; raised from 1 to 3 rows, one per label",
    ]
    with pytest.raises(DataError) as err:
        files({"train": str(nine)}, validation_size=0.8)
    assert str(err.value) == (
        "A validation set of 8 of 9 rows leaves fewer than one row per label (3) to train on. Set "
        "data.validation_size=0.66 or less, or add rows."
    )
    assert files({"train": str(nine)}, validation_size=0.66)["train"].num_rows == 3


def _train(store: str, workdir: Path, data: Path) -> subprocess.CompletedProcess:
    command = train_command(store, workdir, "data=files", f"data.paths={data.name}")
    return subprocess.run(command, capture_output=True, text=True, cwd=data.parent, timeout=600)


def _validate(data: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["data", "validate", str(data)])
    return result.exit_code, result.output.splitlines()


@pytest.mark.slow
def test_one_csv_trains_in_one_line_and_validate_said_so(mine, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    done = _train(store, tmp_path, mine)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert all(f"data: {line}" in log for line in SPLIT)
    assert "\n".join(TABLE) in log
    assert "MLflow run id:" in done.stdout
    [run] = runs(store)
    assert run.info.status == "FINISHED"
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("data/rows/")} == {
        "data/rows/train": 34,
        "data/rows/validation": 4,
        "data/rows/test": 10,
    }
    assert _validate(mine) == (0, [*SPLIT, *TABLE, "ok"])


@pytest.mark.slow
def test_an_input_error_is_one_line_from_validate_and_training_alike_and_opens_no_run(tmp_path, tweets):
    odd = tmp_path / "odd.csv"
    rows = pd.concat([tweets[tweets["label"] != "NONE"], tweets[tweets["label"] == "NONE"].head(1)])
    rows.to_csv(odd, index=False)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    done = _train(store, tmp_path, odd)
    error = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert error == (
        "error: Label 'NONE' has 1 row (odd.csv:34), too few for both training and a test split. Add rows with it, "
        "merge it into another label (data.label_map), give a test file, or set data.test_size=0."
    )
    assert _validate(odd) == (1, [error])
    assert runs(store) == [], "no MLflow run for an input error"
