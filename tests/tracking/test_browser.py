"""The MLflow UI in a real headless Chromium: a run's page shows its metrics, confusion matrix and logged model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import expect, sync_playwright

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


@pytest.fixture(scope="module")
def run(default_run) -> dict:
    """A small default run (the session's `default_run`) in a temporary store, with its artifacts beside it."""
    store = default_run.store
    experiment = MlflowClient(default_run.uri).get_experiment_by_name("stance").experiment_id
    f_avg = default_run.result.evaluation.metrics["test/f_avg"]
    return {"store": store, "uri": default_run.uri, "experiment": experiment, "id": default_run.run_id, "f_avg": f_avg}


@pytest.fixture(scope="module")
def server(run) -> str:
    """A real `mlflow server` on a free local port, serving the run's store; stopped afterwards."""
    port = free_port()
    log = run["store"] / "server.log"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port)]
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


def test_run_page_shows_metrics_confusion_matrix_and_model(run, server, tmp_path):
    f_avg = run["f_avg"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1200},
        )  # fmt: skip
        browser.add_init_script(CLOSED_ASSISTANT)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_S * 1000)
            expect.set_options(timeout=TIMEOUT_S * 1000)
            page.goto(f"{server}/#/experiments/{run['experiment']}/runs/{run['id']}")
            expect(page.get_by_text("Logged models (1)")).to_be_visible()
            # The logged model, named after its experiment and run (its overrides, in the characters MLflow allows).
            name = "stance-data_limit=300,features_show_progress=false,mlflow_register=deployed"
            expect(page.locator("a[href*='/models/m-']", has_text=name).first).to_be_attached()
            page.get_by_placeholder("Search metrics").fill("test/")
            expect(page.get_by_text("test/f_avg", exact=True)).to_be_visible()
            expect(page.get_by_text(repr(f_avg), exact=True)).to_be_visible()
            page.screenshot(path=tmp_path / "mlflow_run.png")

            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("confusion_matrix_test.png", exact=True).first.click()
            image = page.locator("img[alt='confusion_matrix_test.png']")
            expect(image).to_be_visible()
            assert image.evaluate("img => img.complete && img.naturalWidth") > 100
            page.screenshot(path=tmp_path / "mlflow_run_artifacts.png")
        finally:
            browser.close()
    assert (tmp_path / "mlflow_run.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path}")


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
