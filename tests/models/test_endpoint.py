"""classifier=llm_endpoint: a real OpenAI-compatible server (`transformers serve` of the packaged Gemma 3 270M GGUF
on 127.0.0.1, started once for this module) labels rows from its one-word answers (it returns no logprobs), a rerun is
answered from the cache with no request, a run logs usage and the endpoint (never the key), and a logged model
labels from a fresh process; without a server: one clear error per bad setting, a closed port, a missing key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient
from openai.types import Completion

from stance.config import compose_config
from stance.experiment import run_experiment
from stance.features.pretrained import ModelLoadError, resolve_model_path
from stance.models.endpoint import EndpointClassifier, EndpointError, from_logprobs, parse_answer
from stance.models.endpoint_client import answer_positions
from tests.helpers import NEW, free_port, stop

LABELS = ["AGAINST", "FAVOR", "NONE"]
TRAIN = pd.DataFrame(
    {
        "text": ["God is a fairy tale.", "Pray every day, God is great.", "The weather is mild today."] * 2,
        "target": ["Atheism"] * 6,
        "label": ["FAVOR", "AGAINST", "NONE"] * 2,
    }
)
ROWS = pd.DataFrame(
    {
        "text": ["Religion poisons everything.", "Thank you Lord for this day.", "I had pasta for lunch."],
        "target": ["Atheism"] * 3,
    }
)
QUICK = {"api": "completions", "max_tokens": 2, "concurrency": 2, "show_progress": False}


def test_the_config_composes_with_the_stance_prompt():
    cfg = compose_config("classifier=llm_endpoint", "classifier.model=llama3.2").classifier
    assert cfg.model == "llama3.2" and cfg.api == "chat" and cfg.api_key_env is None and cfg.cache
    assert dict(cfg.labels) == {"FAVOR": "favor", "AGAINST": "against", "NONE": "neutral"}
    assert dict(cfg.prices["gpt-4o-mini"]) == {"input": 0.15, "output": 0.60}


BAD = {
    "no model": ({"model": None}, r"classifier.model is not set: give the model name the server serves"),
    "no scheme": ({"base_url": "localhost:8000/v1"}, r"classifier.base_url must be an http\(s\) URL"),
    "api": ({"api": "responses"}, r"classifier.api must be chat .* or completions"),
    "concurrency": ({"concurrency": 0}, r"classifier.concurrency must be a whole number >= 1, got 0"),
    "timeout": ({"timeout": -1}, r"classifier.timeout must be seconds > 0"),
    "prices": ({"prices": {"m": {"in": 1}}}, r"classifier.prices.m must be \{input: .*, output: .*\}"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_setting_is_one_error_naming_its_key(case):
    settings, message = BAD[case]
    with pytest.raises(EndpointError, match=message) as raised:
        EndpointClassifier(**({"model": "m"} | settings)).fit(TRAIN, TRAIN["label"])
    assert isinstance(raised.value, ModelLoadError)  # what `python -m stance.train` says in one line


def test_a_missing_key_variable_is_one_error_naming_it_and_a_pasted_key_is_not_repeated(monkeypatch):
    monkeypatch.delenv("STANCE_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(EndpointError, match=r"api_key_env names the environment variable STANCE_TEST_NO_SUCH_KEY, "):
        EndpointClassifier(model="m", api_key_env="STANCE_TEST_NO_SUCH_KEY").fit(TRAIN, TRAIN["label"])
    with pytest.raises(EndpointError, match=r"must be the NAME of an environment variable") as raised:
        EndpointClassifier(model="m", api_key_env="sk-proj-abc123secret").fit(TRAIN, TRAIN["label"])
    assert "abc123secret" not in str(raised.value)
    monkeypatch.setenv("STANCE_TEST_KEY", "sk-test-0123456789")
    model = EndpointClassifier(model="m", api_key_env="STANCE_TEST_KEY").fit(TRAIN, TRAIN["label"])
    assert "sk-test" not in repr(vars(model))  # the key is read when requests go out, never kept


def test_an_unreachable_server_is_one_quick_error_naming_the_url(tmp_path):
    port = free_port()  # closed: nothing listens there
    model = EndpointClassifier(model="m", base_url=f"http://127.0.0.1:{port}/v1", cache_dir=str(tmp_path), **QUICK)
    model.fit(TRAIN, TRAIN["label"])
    start = time.perf_counter()
    with pytest.raises(EndpointError, match=rf"classifier.base_url http://127.0.0.1:{port}/v1 cannot be reached"):
        model.predict(pd.concat([ROWS] * 10))  # 30 rows, yet one request (and its 2 retries) before the error
    assert time.perf_counter() - start < 10


def test_logprobs_are_normalised_over_the_label_words_and_answers_parsed_to_one_label():
    words = ["against", "favor", "neutral"]
    top = [(" against", np.log(0.5)), (" fav", np.log(0.2)), ("\n", np.log(0.2)), (" a", np.log(0.05))]
    proba = from_logprobs(top, words)  # " a" fits `against` alone; `neutral` is unseen: at most 0.05, or 0.05 left
    np.testing.assert_allclose(proba, np.array([0.55, 0.2, 0.05]) / 0.8)
    assert from_logprobs([("\n", -0.1), ("I", -2.0)], words) is None  # nothing to score: the answer decides
    assert [parse_answer(a, words) for a in (" Favor.", "NEUTRAL\n", "against it", "I think so", "")] == [
        1, 2, 0, None, None
    ]  # fmt: skip


# A llama.cpp server's /v1/completions answer (build 11434, Gemma 3 270M, `logprobs: 2`, a grammar of the words), as
# it came: the chat-style `content` list where OpenAI's completions put `tokens` / `top_logprobs`.
LLAMA_CPP = {
    "id": "cmpl-1", "object": "text_completion", "created": 1796528935, "model": "gemma-3-270m-q4_k_m.gguf",
    "choices": [{"text": "neutral", "index": 0, "finish_reason": "length", "logprobs": {"content": [
        {"id": 45258, "token": "neutral", "logprob": -10.53, "top_logprobs": [
            {"id": 107, "token": "\n", "logprob": -1.99}, {"id": 234681, "token": " Athe", "logprob": -2.31}]}]}}],
    "usage": {"completion_tokens": 1, "prompt_tokens": 22, "total_tokens": 23},
}  # fmt: skip
OPENAI = {
    "id": "cmpl-2", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
    "choices": [{"text": " favor", "index": 0, "finish_reason": "length", "logprobs": {
        "tokens": [" favor"], "token_logprobs": [-0.2], "top_logprobs": [{" favor": -0.2, " against": -1.9}]}}],
}  # fmt: skip


def test_logprobs_are_read_from_openai_and_llama_cpp_completions_alike():
    assert answer_positions(Completion.model_validate(OPENAI).choices[0]) == [
        (" favor", [(" favor", -0.2), (" against", -1.9)])
    ]
    assert answer_positions(Completion.model_validate(LLAMA_CPP).choices[0]) == [
        ("neutral", [("\n", -1.99), (" Athe", -2.31)])
    ]


# Below: a real server. `transformers serve` loads the GGUF file of the packaged gemma3-270m offline and answers
# /v1/completions; it returns no logprobs and refuses the constraint fields by name, so the labels come from the
# answers' words, after the constraint fields were dropped.


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> dict:
    """`transformers serve` of Gemma 3 270M on a free loopback port, once /health answers (about 1-2 minutes)."""
    gguf = Path(resolve_model_path("gemma3-270m"))
    name = f"{gguf.parent}:{gguf.name}"
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", name, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ | {"HF_HUB_OFFLINE": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            assert process.poll() is None, f"transformers serve ended:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"transformers serve did not start:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        yield {"base_url": f"{url}/v1", "model": name, "log": log}
    finally:
        stop(process)


def requests_served(server: dict) -> int:
    """Completions the server has answered so far (uvicorn's access log)."""
    return server["log"].read_text().count('"POST /v1/completions HTTP/1.1" 200')


@pytest.mark.slow
def test_a_server_without_logprobs_labels_from_its_answers_and_a_rerun_sends_nothing(server, tmp_path, caplog):
    settings = {"model": server["model"], "base_url": server["base_url"], "cache_dir": str(tmp_path), **QUICK}
    prices = {server["model"]: {"input": 1.0, "output": 2.0}}
    model = EndpointClassifier(shots=2, seed=7, prices=prices, **settings).fit(TRAIN, TRAIN["label"])
    before = requests_served(server)
    with caplog.at_level("WARNING", logger="stance.models.endpoint_client"):
        proba = model.predict_proba(ROWS)
    assert "The server refused the optional fields ['grammar', 'guided_choice', 'structured_outputs']" in caplog.text
    assert list(model.classes_) == LABELS and proba.shape == (3, 3)
    assert sorted(proba.sum(axis=1)) == [1, 1, 1] and set(proba.ravel()) == {0.0, 1.0}  # one-hot: parsed answers
    assert model.scored_by_ == {"logprobs": 0, "answer": 3} and model.statements_per_second_ > 0
    usage = model.usage_
    assert usage["requests"] == 3 and usage["cached_requests"] == 0 and requests_served(server) - before == 3
    assert usage["input_tokens"] > 30 * 3 and usage["output_tokens"] == 3 * 2
    assert usage["cost_usd"] == pytest.approx((usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1e6)
    # A fresh estimator with the same settings: every answer from the cache, no request to the server.
    again = EndpointClassifier(shots=2, seed=7, **settings).fit(TRAIN, TRAIN["label"])
    np.testing.assert_array_equal(again.predict_proba(ROWS), proba)
    assert again.usage_ == {"requests": 0, "cached_requests": 3, "input_tokens": 0, "output_tokens": 0,
                            "cost_usd": 0.0}  # fmt: skip
    assert requests_served(server) - before == 3


@pytest.mark.slow
def test_answers_that_are_no_label_word_are_one_error_naming_the_rows(server, tmp_path):
    # Words no model says unprompted: Gemma answers something else, and the server gives no logprobs to score.
    labels = {"FAVOR": "zqxv", "AGAINST": "vvkp", "NONE": "jjwq"}
    model = EndpointClassifier(model=server["model"], base_url=server["base_url"], labels=labels,
                               cache_dir=str(tmp_path), **QUICK)  # fmt: skip
    with pytest.raises(EndpointError, match=r"1 of 1 rows were answered with no label word \(vvkp, zqxv, jjwq\) .*"
                       r"row 0: '.*'\)\. Give more examples \(raise classifier.shots"):  # fmt: skip
        model.fit(TRAIN, TRAIN["label"]).predict(ROWS.head(1))


@pytest.mark.slow
def test_a_run_logs_usage_and_the_endpoint_not_the_key_and_its_model_labels_from_a_fresh_process(
    server, make_cfg, tmp_path, monkeypatch, caplog
):
    caplog.set_level("INFO")  # as `python -m stance.train` logs
    secret = "sk-stance-test-9f8e7d6c5b4a"
    monkeypatch.setenv("STANCE_TEST_LLM_TOKEN", secret)  # transformers serve takes any key
    cfg = make_cfg(
        "data=semeval2016_task6", "features=identity", "classifier=llm_endpoint", "per_target=false", "bootstrap=0",
        "data.limit=3", "classifier.api=completions", "classifier.shots=1", "classifier.max_tokens=2",
        f"classifier.model={server['model']}", f"classifier.base_url={server['base_url']}",
        "classifier.api_key_env=STANCE_TEST_LLM_TOKEN", f"classifier.cache_dir={tmp_path / 'cache'}",
        "classifier.show_progress=false",
    )  # fmt: skip
    result = run_experiment(cfg)  # greedy answers: Gemma names a label word for each of these six rows
    assert "labelled 3 rows" in caplog.text and "HTTP Request:" not in caplog.text  # no line per request
    client = MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["llm.endpoint"] == server["base_url"] and run.data.params["llm.api"] == "completions"
    assert run.data.params["classifier.api_key_env"] == "STANCE_TEST_LLM_TOKEN"
    metrics = run.data.metrics
    assert metrics["llm/requests"] + metrics["llm/cached_requests"] == 6  # validation and test, 3 rows each
    assert metrics["llm/input_tokens"] > 0 and metrics["llm/cost_usd"] == 0 and metrics["llm/statements_per_second"] > 0
    record = json.loads(Path(client.download_artifacts(result.run_id, "llm_prompt.json")).read_text())
    assert record["endpoint"] == server["base_url"] and len(record["shots"]) == 1
    requirements = Path(client.download_artifacts(result.run_id, "model/requirements.txt")).read_text()
    assert "openai==" in requirements
    store = Path(cfg.mlflow.tracking_uri.removeprefix("sqlite:///")).parent
    for file in (f for f in store.rglob("*") if f.is_file()):  # the store, its artifacts and the logged model
        assert secret.encode() not in file.read_bytes(), file
    # A fresh process loads the model, which calls the same server with a key from the same variable.
    before = requests_served(server)
    script = (
        "import sys, pandas as pd, stance\n"
        f"model = stance.load_model('runs:/{result.run_id}/model', tracking_uri={cfg.mlflow.tracking_uri!r})\n"
        f"print(model.predict(pd.DataFrame({NEW.head(1).to_dict('list')!r})).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] in {f"['{label}']" for label in LABELS}
    assert requests_served(server) - before == 1
