"""`stance compare` on real runs: two classifiers on the same SemEval slice, and one on a different test set."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from stance.cli import app
from stance.comparison import compare_runs, repredict, resolve_run_id, run_predictions
from stance.evaluation.compare import ComparisonError, mcnemar
from stance.experiment import run_experiment
from tests.conftest import compose


@pytest.fixture(scope="module")
def runs(default_run) -> dict:
    """Runs `logreg` (the session's `default_run`) and `svm` on a 300-row slice, `other` on a 200-row slice, in one
    temporary store (the default run's)."""
    ids = {"uri": default_run.uri, "logreg": default_run.run_id}
    for name, overrides in {
        "svm": ["classifier=svm", "data.limit=300"],
        "other": ["classifier=logreg", "data.limit=200"],
    }.items():
        overrides = ["features.show_progress=false", "bootstrap=0", *overrides]
        ids[name] = run_experiment(compose(*overrides, store=default_run.store), overrides).run_id
    return ids


@pytest.mark.slow
def test_compare_two_real_runs(runs):
    result = compare_runs(runs["logreg"], runs["svm"], runs["uri"], n_resamples=2000)
    logged = {k: MlflowClient(runs["uri"]).get_run(runs[k]).data.metrics["test/f_avg"] for k in ("logreg", "svm")}
    assert result.metric == "f_avg" and result.n == 300
    assert (result.a, result.b) == pytest.approx((logged["logreg"], logged["svm"]))
    assert result.diff == pytest.approx(result.b - result.a)
    assert result.ci_low <= result.diff <= result.ci_high
    assert 1 / 2001 <= result.p_bootstrap <= 1 and 0 < result.p_mcnemar <= 1
    assert result.only_a_correct + result.only_b_correct > 0, "two different classifiers disagree on some rows"


@pytest.mark.slow
def test_cli_prints_difference_ci_and_p_values(runs):
    short = [runs["svm"][:8], runs["logreg"][:8]]  # the ids as the MLflow UI shows them
    result = CliRunner().invoke(app, ["compare", *short, "--tracking-uri", runs["uri"]])
    assert result.exit_code == 0, result.output
    assert f"A {runs['svm']} (" in result.stdout and f"B {runs['logreg']} (" in result.stdout
    assert "test F_avg on the same 300 test rows" in result.stdout
    assert "B - A:" in result.stdout and "95% CI [" in result.stdout
    assert "paired bootstrap p = " in result.stdout and "McNemar" in result.stdout


@pytest.mark.slow
def test_different_test_sets_are_an_error(runs):
    with pytest.raises(ComparisonError, match=r"different test sets \(300 and 200 rows"):
        compare_runs(runs["logreg"], runs["other"], runs["uri"])
    result = CliRunner().invoke(app, ["compare", runs["logreg"], runs["other"], "--tracking-uri", runs["uri"]])
    assert result.exit_code == 1 and "different test sets" in result.output


@pytest.mark.slow
def test_logged_predictions_match_the_model_on_the_rebuilt_test_split(runs):
    client = MlflowClient(runs["uri"])
    logged, rebuilt = run_predictions(runs["svm"], client), repredict(runs["svm"], client)
    keys = ["text", "target", "label", "predicted"]
    assert logged[keys].sort_values(keys).values.tolist() == rebuilt[keys].sort_values(keys).values.tolist()


def test_a_missing_store_is_named_and_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a folder without mlflow.db, as a newcomer's
    # The default store, given explicitly: an earlier in-process run may have set MLflow's process-wide one.
    result = CliRunner().invoke(app, ["compare", "abc", "def", "--tracking-uri", "sqlite:///mlflow.db"])
    assert result.exit_code == 1
    assert f"No MLflow store at sqlite:///{tmp_path}/mlflow.db (none was created)" in result.output
    assert "--tracking-uri sqlite:////path/to/mlflow.db" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_run_is_an_error(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # an existing store without that run
    with pytest.raises(ComparisonError, match="No run 'nope'"):
        compare_runs("nope", "nope", uri)


def test_a_run_is_found_by_the_start_of_its_id_and_an_ambiguous_start_is_named(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    ids = [client.create_run("0").info.run_id for _ in range(17)]  # 17 ids, 16 hex digits: two share a first one
    assert resolve_run_id(ids[0][:8], client) == ids[0]
    assert resolve_run_id(ids[0], client) == ids[0]
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(ComparisonError, match=f"'{shared}' starts more than one run id .*: give more characters"):
        resolve_run_id(shared, client)
    unused = next(p for p in (f"{n:04x}" for n in range(65536)) if not any(i.startswith(p) for i in ids))
    with pytest.raises(ComparisonError, match=f"No run '{unused}' \\(nor one whose id starts with it\\)"):
        resolve_run_id(unused, client)


def test_mcnemar_counts_discordant_pairs_and_tests_them_exactly():
    right_a = np.array([True] * 5 + [True] + [False] * 9 + [False] * 3)
    right_b = np.array([True] * 5 + [False] + [True] * 9 + [False] * 3)
    assert mcnemar(right_a, right_b) == (1, 9, pytest.approx(2 * 11 / 1024))
    assert mcnemar(right_a, right_a) == (0, 0, 1.0)
