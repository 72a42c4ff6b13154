"""`stance.analyze` and `stance analyze` on the example article, with default models trained on corpus slices and
registered in a temporary MLflow store."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stance
from stance.analysis.analyze import DEFAULT_MODELS, LARGE_MODELS, default_model, registered_experiment, render
from stance.config import compose_config
from stance.data.schema import STANCE_LABELS
from stance.experiment import run_experiment, train_default
from tests.conftest import ANALYZE_LIMIT as LIMIT
from tests.helpers import FIXTURES

FIXTURE = FIXTURES / "news_security_guarantees.json"
TARGET = "NATO expansion to the east"


@pytest.fixture(scope="session")
def analysis(registry, article):
    return stance.analyze(article.read_text(encoding="utf-8"), [TARGET, "Vladimir Putin"], tracking_uri=registry)


def test_one_row_per_statement_with_scores(analysis):
    gold = json.loads(FIXTURE.read_text(encoding="utf-8"))["statements"]
    rows = analysis.statements
    assert len(rows) == len(gold)
    assert rows["speaker"].fillna("-").tolist() == [g["speaker"] or "-" for g in gold]
    assert rows["claim"].between(0, 1).all()
    assert rows["topic"].map(lambda t: isinstance(t, str) and t).all()
    for target in (TARGET, "Vladimir Putin"):
        assert set(rows[f"stance: {target}"]) <= set(STANCE_LABELS)
        assert rows[f"p: {target}"].between(1 / 3, 1).all()


def test_summary_is_speaker_by_target(analysis):
    summary = analysis.summary.set_index("speaker")
    assert set(summary.index) == {"Sergei Lavrov", "Dmitry Peskov", "(narration)"}
    assert summary["statements"].sum() == len(analysis.statements)
    assert summary[TARGET].str.match(r"(AGAINST|FAVOR|NONE|MIXED) \(\d+ against, \d+ favor\)").all()


def test_formats(analysis):
    table = render(analysis, "table")
    assert "Sergei Lavrov" in table and "(narration)" in table and " against, " in table
    frame = pd.read_csv(io.StringIO(render(analysis, "csv")))
    assert list(frame.columns[:4]) == ["paragraph", "speaker", "kind", "statement"]
    assert f"stance: {TARGET}" in frame.columns and len(frame) == len(analysis.statements)
    records = [json.loads(line) for line in render(analysis, "jsonl", summary=True).splitlines()]
    assert {r["speaker"] for r in records} == set(analysis.summary["speaker"])
    with pytest.raises(ValueError, match="Unknown format 'xml'"):
        render(analysis, "xml")


def test_the_defaults_are_the_registered_models_of_named_experiments(registry, analysis, article):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(registry)
    for default in DEFAULT_MODELS.values():
        version = client.get_model_version_by_alias(default.name, "default")
        assert str(version.version) == "1"  # analysing did not train again
        run = client.get_run(version.run_id)
        assert run.data.tags["overrides"].startswith(f"experiment={default.experiment} ")
    explicit = stance.analyze(
        article.read_text(encoding="utf-8"), [TARGET, "Vladimir Putin"], tracking_uri=registry,
        stance_model="models:/stance-zero-shot@default", claim_model="models:/claim-checkworthy@default",
    ).statements  # fmt: skip
    pd.testing.assert_frame_equal(explicit, analysis.statements)


def test_given_models_are_used_as_they_are(registry):
    claim = default_model("claim", registry)
    # The stance model comes from the test registry too: the user's default store would train the full default.
    text = "“Taxes rose by 40% last year,” Anna Berg said."
    result = stance.analyze(text, TARGET, claim_model=claim, tracking_uri=registry)
    np.testing.assert_allclose(
        result.statements["claim"],
        claim.predict_proba(pd.DataFrame({"text": [result.statements["statement"][0]]}))[:, 1],
        atol=1e-3,
    )


@pytest.mark.parametrize(
    ("text", "targets", "message"),
    [
        ("  \n\n ", [TARGET], "no sentences"),
        ("*** --- ***", [TARGET], "no sentences"),
        ("NATO grows.", [""], "Target 1 is ''"),
        ("NATO grows.", [TARGET, "  "], "Target 2 is '  '"),
        ("NATO grows.", [], "at least one target"),
    ],
)
def test_bad_input_is_refused_before_any_model_loads(text, targets, message):
    with pytest.raises(ValueError, match=message):
        stance.analyze(text, targets, tracking_uri="sqlite:////nonexistent/never/used.db")


@pytest.mark.slow
def test_a_default_model_missing_from_a_new_store_is_trained_into_it_once(tmp_path, data_root):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(LookupError) as err:
        default_model("claim", uri)  # without a trainer: the command, and no empty store left behind
    assert str(err.value) == (
        f"No model claim-checkworthy@default in {uri}. Train the defaults once with `stance models prepare "
        f"--tracking-uri {uri}`, or call stance.analyze, which trains them on first use."
    )
    assert not (tmp_path / "mlflow.db").exists()
    model = default_model("claim", uri, limit=LIMIT, train=train_default)  # as `stance.analyze` calls it
    assert hasattr(model, "predict_proba")
    from mlflow.tracking import MlflowClient

    assert int(MlflowClient(uri).get_model_version_by_alias("claim-checkworthy", "default").version) == 1


def test_a_bad_model_uri_is_one_clear_error():
    with pytest.raises(ValueError, match="Cannot load the claim model 'no/such/model'"):
        stance.analyze("NATO grows.", TARGET, claim_model="no/such/model")


def cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "stance.cli", "analyze", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        (None, TARGET, "no such file"),
        ("Caf\xe9 news.".encode("cp1252"), TARGET, "is not valid UTF-8"),
        (b"\n \n", TARGET, "no sentences"),
        (b"NATO grows.", "", "Target 1 is ''"),
    ],
)
def test_cli_errors_are_one_message_without_traceback(tmp_path, content, target, message):
    path = tmp_path / "article.txt"
    if content is not None:
        path.write_bytes(content)
    done = cli(str(path), "--target", target, "--tracking-uri", f"sqlite:///{tmp_path}/unused.db")
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_prints_the_table(registry, article):
    done = cli(str(article), "--target", TARGET, "--tracking-uri", registry)
    assert done.returncode == 0, done.stderr
    assert "Sergei Lavrov" in done.stdout and f"{TARGET}" in done.stdout


@pytest.mark.slow
def test_cli_uses_a_logged_claim_model(make_cfg, registry, article):
    # Logged into the store that --tracking-uri names, where runs:/ URIs resolve.
    cfg = make_cfg("experiment=clef_claims_context", "data.limit=300", f"mlflow.tracking_uri={registry}")
    logged = run_experiment(cfg)
    uri = f"runs:/{logged.run_id}/model"
    done = cli(str(article), "--target", TARGET, "--claim-model", uri, "--tracking-uri", registry, "--format", "csv")
    assert done.returncode == 0, done.stderr
    text = article.read_text(encoding="utf-8")
    expected = stance.analyze(text, TARGET, claim_model=logged.model, tracking_uri=registry).statements["claim"]
    np.testing.assert_allclose(pd.read_csv(io.StringIO(done.stdout))["claim"], expected, atol=1e-3)


def test_import_stays_light():
    code = "import sys, stance; print(callable(stance.analyze), [m for m in ('torch', 'mlflow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True []"


def test_default_models_are_stored_with_skops_and_load_without_unpickling(registry):
    import mlflow

    for kind, default in DEFAULT_MODELS.items():
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{default.name}@default", tracking_uri=registry))
        assert [p.name for p in (local / "artifacts").glob("pipeline.*")] == ["pipeline.skops"]
        assert hasattr(default_model(kind, registry), "predict_proba")  # stance.load_model: allow_pickle is False


def test_the_default_claim_model_is_minilm_and_mpnet_is_opt_in(registry):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(registry)
    version = client.get_model_version_by_alias("claim-checkworthy", "default")
    params = client.get_run(version.run_id).data.params
    assert params["members.claim_encoder.model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["features.transformer_list"].count("all-MiniLM-L6-v2") == 3  # sentence, previous, next
    large = compose_config(f"experiment={LARGE_MODELS['claim'].experiment}")
    assert large.members.claim_encoder.model == "sentence-transformers/all-mpnet-base-v2"


def test_the_large_stance_model_is_entailment_started_from_the_nli_stage_it_trains_first():
    first, then = (compose_config(f"experiment={e}") for e in (*LARGE_MODELS["stance"].after, "stance_stage"))
    assert LARGE_MODELS["stance"].after == ("nli_stage",) and LARGE_MODELS["stance"].experiment == "stance_stage"
    assert then.classifier._target_ == "stance.models.entailment.EntailmentClassifier"
    assert then.classifier.model == f"models:/{first.mlflow.register}@{first.mlflow.alias}"


@pytest.mark.slow
def test_the_large_stance_default_trains_both_stages_into_the_store_and_labels_a_new_target(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = train_default("stance", uri, limit=20, large=True)
    client = MlflowClient(uri)
    nli = client.get_model_version_by_alias("nli-minilm", "champion")
    assert client.get_run(nli.run_id).data.params["data._target_"] == "stance.data.corpora.nli.nli"
    assert client.get_model_version_by_alias("stance-zero-shot", "default").run_id == run_id
    assert registered_experiment("stance", uri) == "stance_stage"
    model = default_model("stance", uri)
    assert {v for k, v in model.get_params().items() if k.endswith("__model")} == {"models:/nli-minilm@champion"}
    rows = pd.DataFrame({"text": ["We must stop NATO moving east.", "NATO should welcome them."], "target": TARGET})
    assert model.predict_proba(rows).shape == (2, 3) and set(model.predict(rows)) <= set(STANCE_LABELS)
