"""MLflow's telemetry: off once stance is imported, unless the user turned it on."""

from __future__ import annotations

import os
import subprocess
import sys


def test_mlflow_telemetry_is_off_unless_the_user_asks_for_it() -> None:
    """Offline, MLflow's telemetry thread unsets an environment variable mid-run: importing stance turns it off."""
    # pytest and CI variables switch MLflow's telemetry off by themselves; a user's shell has neither.
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_CURRENT_TEST", "MLFLOW_DISABLE_TELEMETRY"}}
    code = (
        "import os, stance, mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], get_telemetry_client())"
    )
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split() == ["true", "None"]
    code = "import os, stance; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    env["MLFLOW_DISABLE_TELEMETRY"] = "false"
    asked = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert asked.stdout.split() == ["false"]
