"""The MLflow UI in a real headless Chromium: the link training prints opens the experiment on its runs, the model one
click away; a run's page shows its metrics, confusion matrix and logged model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import expect, sync_playwright

from stance.train import UI, report
from tests.conftest import DEFAULT_RUN, compose
from tests.helpers import free_port

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium (make install-browser); Playwright downloads no browser
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A busy CI machine takes its time to start the server and render the React app.
TIMEOUT_S = 240
# Keep MLflow's chat panel, which opens on a first visit, from covering half of the screenshots.
CLOSED_ASSISTANT = """
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
"""
# The default run's model, named after its experiment and run (the run's overrides, in the characters MLflow allows).
MODEL_NAME = "stance-data_limit=300,features_show_progress=false,mlflow_register=deployed"


@pytest.fixture(scope="module")
def run(default_run) -> dict:
    """A small default run (the session's `default_run`) in a temporary store, and the UI link training printed."""
    client = MlflowClient(default_run.uri)
    printed = report(default_run.result, compose(*DEFAULT_RUN, store=default_run.store)).splitlines()
    [ui_line] = [line for line in printed if line.startswith("Its runs in the MLflow UI: ")]
    return {
        "store": default_run.store, "uri": default_run.uri, "id": default_run.run_id,
        "experiment": client.get_experiment_by_name("stance").experiment_id,
        "name": client.get_run(default_run.run_id).info.run_name,
        "f_avg": default_run.result.evaluation.metrics["test/f_avg"], "link": ui_line.rsplit(" ", 1)[-1],
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(run) -> str:
    """A real `mlflow server` on a free local port, serving the run's store; stopped afterwards."""
    port = free_port()
    log = run["store"] / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", run["uri"], "--default-artifact-root", str(run["store"] / "artifacts")]
    with log.open("w") as out:
        # Its own process group: the server starts worker processes, and all of them must stop with it.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"},
        )  # fmt: skip
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_printed_link_opens_the_experiment_on_its_runs_with_the_model_one_click_away(run, server, tmp_path):
    assert run["link"].startswith(f"{UI}/#/experiments/{run['experiment']}/runs?")
    with _browser(tmp_path) as browser:  # a new profile: a first visit, as a new user's
        page = browser.new_page()
        # What the user saw: MLflow 3.17 and 3.18 open an experiment on its GenAI overview (traces, no runs table), each
        # with its own empty-state text. Should this fail, MLflow opens on the runs by itself and the printed link's
        # `workflowType` can go (stance/train.py, report).
        page.goto(f"{server}/#/experiments/{run['experiment']}")
        expect(page.get_by_text("Traces", exact=True).first).to_be_visible()
        expect(page.get_by_role("navigation", name="Breadcrumb").get_by_text("Overview", exact=True)).to_be_visible()
        expect(page.get_by_role("columnheader", name="Run Name")).to_have_count(0)

        page.goto(run["link"].replace(UI, server))
        expect(page.get_by_role("columnheader", name="Run Name").first).to_be_visible()
        expect(page.get_by_role("link", name=run["name"], exact=True)).to_be_visible()
        # The run's model, in its Models column: the registered version (`deployed`, v1), or the model's own name.
        model = page.get_by_role("link", name="deployed", exact=True)
        expect(model).to_be_visible()
        page.screenshot(path=tmp_path / "mlflow_experiment.png")

        with browser.expect_page() as opened:  # the runs table opens a model in a new tab
            model.click()
        tab = opened.value
        expect(tab.get_by_text("Source Model", exact=True)).to_be_visible()
        expect(tab.get_by_role("link", name=MODEL_NAME)).to_be_visible()
        assert tab.url.endswith("/models/deployed/versions/1")
        tab.screenshot(path=tmp_path / "mlflow_model.png")
    assert (tmp_path / "mlflow_experiment.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path}")


def test_run_page_shows_metrics_confusion_matrix_and_model(run, server, tmp_path):
    f_avg = run["f_avg"]
    with _browser(tmp_path) as browser:
        page = browser.new_page()
        # In the model-training view, as the printed link opens it (the GenAI view shows the same run page).
        page.goto(f"{server}/#/experiments/{run['experiment']}/runs/{run['id']}?workflowType=machine_learning")
        expect(page.get_by_text("Logged models (1)")).to_be_visible()
        expect(page.locator("a[href*='/models/m-']", has_text=MODEL_NAME).first).to_be_attached()
        page.get_by_placeholder("Search metrics").fill("test/")
        expect(page.get_by_text("test/f_avg", exact=True)).to_be_visible()
        expect(page.get_by_text(repr(f_avg), exact=True)).to_be_visible()
        page.screenshot(path=tmp_path / "mlflow_run.png")

        page.get_by_role("tab", name="Artifacts").click()
        expect(page.get_by_text("model", exact=True).first).to_be_visible()  # the model among the run's artifacts
        page.get_by_text("confusion_matrix_test.png", exact=True).first.click()
        image = page.locator("img[alt='confusion_matrix_test.png']")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth") > 100
        page.screenshot(path=tmp_path / "mlflow_run_artifacts.png")
    assert (tmp_path / "mlflow_run.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path}")


@contextmanager
def _browser(tmp_path: Path) -> Iterator:
    """Headless Chromium with a new profile under `tmp_path`, MLflow's chat panel closed, patient timeouts."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1200},
        )  # fmt: skip
        browser.add_init_script(CLOSED_ASSISTANT)
        browser.set_default_timeout(TIMEOUT_S * 1000)
        expect.set_options(timeout=TIMEOUT_S * 1000)
        try:
            yield browser
        finally:
            browser.close()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll the server's health endpoint; fail with its log if it exits or stays silent."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow server did not answer {url} within {TIMEOUT_S} s:\n{log.read_text()}")
