"""`stance data list` and `stance data describe` on the real corpora."""

from __future__ import annotations

from typer.testing import CliRunner

from stance.cli import app
from stance.data.registry import corpora
from tests.helpers import CONF

runner = CliRunner()


def test_list_shows_every_corpus_with_sizes(data_root):
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    # Exactly the data configs that declare a corpus: all but own files, the Hub and the mix.
    configs = {p.stem for p in (CONF / "data").glob("*.yaml")} - {"files", "hub", "stance_mix"}
    assert set(lines) == configs == set(corpora()) and len(configs) == 18
    assert lines["vast_devtest"][1:] == ["stance", "validation,test", "-", "2062", "3006"]
    assert lines["ag_news_test"][1:] == ["topic", "test", "-", "-", "7600"]


def test_describe_shows_labels_targets_and_lengths(data_root):
    result = runner.invoke(app, ["data", "describe", "emergent", "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "split x label" in result.stdout and "top 3 of 300 targets" in result.stdout
    assert "text length in characters" in result.stdout
    label_table = result.stdout.split("split x label")[1].split("\n\n")[0]
    assert "AGAINST" in label_table and "524" in label_table  # the test split's size


def test_describe_unknown_corpus_lists_the_names():
    result = runner.invoke(app, ["data", "describe", "nope"])
    assert result.exit_code == 2 and "unknown corpus 'nope'" in result.output and "fnc1" in result.output


def test_data_validate_reports_warnings_and_errors(tmp_path):
    good = tmp_path / "mine.csv"
    good.write_text(
        "Tweet,Stance\nhello,FAVOR\nhello,AGAINST\nbye,NONE\nhi,FAVOR\nno,AGAINST\nso,NONE\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app, ["data", "validate", f"train={good}", f"test={good}", "--columns", "text=Tweet,label=Stance"]
    )
    assert result.exit_code == 0, result.output
    # As training would: a validation set carved from train, one row per label at least.
    assert (
        "validation: 3 of 6 rows held out, stratified by label; raised from 1 to 3 rows, one per label" in result.output
    )
    assert [line.split() for line in result.output.splitlines()[1:5]] == [
        ["AGAINST", "FAVOR", "NONE", "total"],
        ["train", "1", "1", "1", "3"],
        ["validation", "1", "1", "1", "3"],
        ["test", "2", "2", "2", "6"],
    ]
    assert "texts also occur in test (leakage)" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("Tweet,Stance\nhello,FAVOR\n  ,NONE\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "validate", str(bad), "--columns", "text=Tweet,label=Stance"])
    assert result.exit_code == 1
    assert "bad.csv:3, column 'Tweet': empty text" in result.output


def test_data_validate_rejects_a_header_only_file_and_an_unknown_stance_label(tmp_path):
    header = tmp_path / "train.csv"
    header.write_text("Tweet,Stance\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "validate", str(header), "--columns", "text=Tweet,label=Stance"])
    assert result.exit_code == 1 and "train.csv has a header but no rows" in result.output
    odd = tmp_path / "odd.csv"
    odd.write_text("Tweet,Stance\nhello,FAVOR\nbye,favour\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "validate", str(odd), "--columns", "text=Tweet,label=Stance"])
    assert result.exit_code == 1 and "odd.csv:3, column 'Stance': unknown label 'favour' (did you mean 'FAVOR'?)" in (
        result.output
    )
    result = CliRunner().invoke(
        app, ["data", "validate", f"test={odd}", "--columns", "text=Tweet,label=Stance", "--task", "topic"]
    )
    assert result.exit_code == 0 and result.output.splitlines()[:2] == [
        "      FAVOR  favour  total",
        "test      1       1      2",
    ]
