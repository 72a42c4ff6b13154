"""A researcher's first `stance analyze` (issue 29, point 1): the default models train once, saying how long it takes
and showing progress, can be trained ahead with `stance models prepare`, and stop within seconds on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from stance.cli import app
from tests.helpers import default_sigint, wait_for

# A tqdm bar of the default training, finished: "Encoding with all-MiniLM-L6-v2: 100%|███| 93/93 [00:02<00:00, ...]",
# where "<00:00" is its estimate of the time left.
FINISHED_BAR = re.compile(r"Encoding with all-MiniLM-L6-v2: 100%\|[^|]*\| (\d+)/\1 \[\d\d:\d\d<\d\d:\d\d")
TARGET = "NATO expansion to the east"


def words(text: str) -> str:
    """Help text as plain words: rich's boxes and line wrapping removed."""
    return " ".join(text.replace("│", " ").split())


def stance_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stance.cli", *args]


def store_runs(uri: str) -> list:
    """Every run in a store, of any experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["analyze", "--help"], "The first run trains the default models once: about 3 min on 2 free CPU cores"),
        (["models", "prepare", "--help"], "trains what the store lacks, once, with a progress bar and an estimate"),
        (
            ["models", "prepare", "--help"],
            "--large trains the mpnet claim model (about 17 min) and stance as entailment (about 90 min) instead",
        ),
        (["models", "prepare", "--help"], "Ctrl-C stops it within seconds and marks its MLflow run KILLED"),
    ],
)
def test_help_says_the_one_time_training_and_how_long_it_takes(command, says):
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert says in words(result.output)


@pytest.mark.slow
def test_first_analyze_says_how_long_and_shows_progress_then_analyses(tmp_path, data_root):
    store, article = f"sqlite:///{tmp_path}/mlflow.db", data_root.parent / "examples" / "news_security_guarantees.txt"
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache")}  # cold: every text is encoded
    command = stance_command("analyze", str(article), "--target", TARGET, "--tracking-uri", store, "--limit", "100")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.replace("\r", "\n")
    assert "First use: training the default claim and stance model(s) once, about 3 min on 2 free CPU cores" in err
    for kind, minutes in (("claim", 1), ("stance", 2)):
        assert re.search(rf"Training the default {kind} model \(.*MiniLM.*\) once .*: about {minutes} min", err)
        assert re.search(rf"Trained the default {kind} model in (\d+ min )?\d+ s: run [0-9a-f]{{32}}\.", err)
    assert "Downloading artifacts" not in err and "Loading weights" not in err  # no library bars for local steps
    assert len(FINISHED_BAR.findall(err)) >= 4  # claim: train, validation, test texts; stance: texts and targets
    assert "Sergei Lavrov" in done.stdout  # then the analysis itself

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training" not in again.stderr.lower() and "Encoding" not in again.stderr


def test_prepare_leaves_registered_defaults_alone(registry):
    result = CliRunner().invoke(app, ["models", "prepare", "--tracking-uri", registry])
    assert result.exit_code == 0, result.output
    assert "claim: models:/claim-checkworthy@default (experiment=clef_claims_context) is ready." in result.output
    assert "stance: models:/stance-zero-shot@default (experiment=zero_shot_stance) is ready." in result.output
    assert "Training" not in result.output
    from mlflow.tracking import MlflowClient

    for name in ("claim-checkworthy", "stance-zero-shot"):  # nothing trained again
        assert str(MlflowClient(registry).get_model_version_by_alias(name, "default").version) == "1"


def test_prepare_refuses_dir_without_a_name():
    result = CliRunner().invoke(app, ["models", "prepare", "--dir", "/tmp/elsewhere"])
    assert result.exit_code == 2
    assert "applies to NAME; for the default models set $STANCE_CACHE" in words(result.output)


@pytest.mark.slow
def test_ctrl_c_during_default_training_stops_within_2_s_and_marks_the_run_killed(tmp_path):
    store, log = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "prepare.log"
    env = {**os.environ, "STANCE_CACHE": str(tmp_path / "cache")}  # cold: minutes of encoding ahead
    command = stance_command("models", "prepare", "--tracking-uri", store, "--limit", "3000")
    process = subprocess.Popen(
        command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=default_sigint
    )
    # Mid-encoding: the bar has counted some texts (a Ctrl-C then lands in the encoder, the longest stretch).
    wait_for(lambda: re.search(r"Encoding with .*\| *[1-9]\d*/\d+", log.read_text()), "encoding", process, log)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    stopped = time.monotonic() - sent
    output = log.read_text()
    assert code != 0, output[-3000:]
    assert stopped <= 2, f"{stopped:.1f} s from Ctrl-C to exit"
    assert [r.info.status for r in store_runs(store)] == ["KILLED"]
    assert "Stopped: the claim model's MLflow run is marked KILLED; run again to finish" in output
    assert "Traceback" not in output
