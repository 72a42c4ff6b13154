"""Models that travel: the wheel runs experiments from any folder with the user's own configs; a logged model loads,
predicts and serves in a fresh venv made from nothing but its requirements.txt (and on Spark: predict/test_spark.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import NEW, REPO, free_port, stop

pytestmark = pytest.mark.slow
# A user's config folder: an experiment of their own, on top of the packaged configs.
USER_EXPERIMENT = """# @package _global_
defaults:
  - override /features: tfidf
per_target: false
bootstrap: 0
data:
  limit: 150
mlflow:
  experiment: mine
"""
USER_CLASSIFIER = """_target_: sklearn.ensemble.RandomForestClassifier
n_estimators: 20
random_state: 0
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH (so nothing resolves to the checkout) and with `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | extra


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv holding the wheel that `pip wheel .` builds (not editable); its dependencies come from this venv."""
    root = tmp_path_factory.mktemp("installed")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root), str(REPO)], root)
    wheel = next(root.glob("stance-*.whl"))
    assert any(n == "stance/conf/config.yaml" for n in zipfile.ZipFile(wheel).namelist())
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    site = Path(run([str(venv / "bin/python"), "-c", "import site; print(site.getsitepackages()[0])"], root).strip())
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--no-deps", str(wheel)]
    run(pip, root, clean_env())  # without PYTHONPATH, which may make pip think the checkout is installed
    # Dependencies are not reinstalled (minutes of torch and friends): this venv sees this one's site-packages, after
    # its own, so `stance` itself comes from the wheel. test_model_runs_in_a_venv_from_its_requirements installs all.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_runs_an_experiment_from_any_folder_with_user_configs(installed, tmp_path, data_root):
    work = tmp_path / "elsewhere"
    (work / "my_conf/experiment").mkdir(parents=True)
    (work / "my_conf/experiment/mine.yaml").write_text(USER_EXPERIMENT)
    env = clean_env(STANCE_DATA=str(data_root), STANCE_CACHE=str(tmp_path / "cache"))
    python = str(installed / "bin/python")
    where = run([python, "-c", "import stance; print(stance.__file__)"], work, env)
    assert where.startswith(str(installed)), where
    out = run([python, "-m", "stance.train", "--config-dir", "my_conf", "experiment=mine"], work, env)
    assert "MLflow run id:" in out and "test/f_avg=" in out
    # A `conf/` in the working folder is read without being named: a classifier the package does not have.
    (work / "conf/classifier").mkdir(parents=True)
    (work / "conf/classifier/rf.yaml").write_text(USER_CLASSIFIER)
    (work / "conf/experiment").mkdir()
    (work / "conf/experiment/mine.yaml").write_text(USER_EXPERIMENT)
    done = subprocess.run(
        [python, "-m", "stance.train", "experiment=mine", "classifier=rf", "mlflow.experiment=again"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"also reading configs from {work / 'conf'}" in done.stderr and "MLflow run id:" in done.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work}/mlflow.db")  # the user's configs were applied
    assert client.get_experiment_by_name("mine")
    again = client.search_runs([client.get_experiment_by_name("again").experiment_id])[0]
    assert again.data.params["classifier._target_"] == "sklearn.ensemble.RandomForestClassifier"
    assert not (REPO / "conf/experiment/mine.yaml").exists()
    assert "predict" in run([str(installed / "bin/stance"), "--help"], work, env)
    # The model that the installed package logged carries a wheel built from the installed files.
    wheels = list((work / "mlruns").rglob("stance-*-py3-none-any.whl"))
    assert wheels, "the logged model has no stance wheel"
    with zipfile.ZipFile(wheels[0]) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "Requires-Dist: mlflow" in metadata and "stance/conf/config.yaml" in archive.namelist()


PREDICT = """
import json, sys
import mlflow, pandas as pd, stance
frame = pd.DataFrame(json.loads(sys.argv[2]))
print(json.dumps({
    "stance": stance.__file__,
    "pyfunc": mlflow.pyfunc.load_model(sys.argv[1]).predict(frame)["label"].tolist(),
    "pipeline": [str(v) for v in stance.load_model(sys.argv[1]).predict(frame)],
}))
"""


def test_model_runs_in_a_venv_from_its_requirements(logged_model, tmp_path):
    requirements = (logged_model / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("artifacts/stance-") and r.endswith("-py3-none-any.whl") for r in requirements)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    # As MLflow's environment managers do: from the model folder, so the wheel's relative path resolves.
    env = clean_env(STANCE_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    pip = [str(venv / "bin/pip"), "install", "--quiet", "--no-compile", "-r", "requirements.txt"]  # no .pyc: faster
    run(pip, logged_model, env, timeout=1500)
    out = json.loads(run([str(venv / "bin/python"), "-c", PREDICT, str(logged_model), NEW.to_json()], tmp_path, env))
    assert out["stance"].startswith(str(venv))
    import stance

    expected = [str(v) for v in stance.load_model(str(logged_model)).predict(NEW)]
    assert out["pyfunc"] == out["pipeline"] == expected
    # `mlflow models predict` in that venv, on the model's own serving example.
    example = logged_model / "serving_input_example.json"
    cmd = [str(venv / "bin/mlflow"), "models", "predict", "-m", str(logged_model), "-i", str(example)]
    cmd += ["-t", "json", "-o", str(tmp_path / "pred.json"), "--env-manager", "local"]
    run(cmd, tmp_path, env)
    predictions = json.loads((tmp_path / "pred.json").read_text())["predictions"]
    rows = json.loads(example.read_text())["dataframe_split"]["data"]
    assert len(predictions) == len(rows) and all(p["label"] in {"AGAINST", "FAVOR", "NONE"} for p in predictions)


JSON = {"Content-Type": "application/json"}


def test_mlflow_models_serve_answers_the_serving_example(logged_model, tmp_path):
    import requests

    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(logged_model), "--env-manager", "local"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = tmp_path / "serve.log"
    # MLflow starts `uvicorn` by name: the venv's bin folder must be on PATH, as in an activated venv.
    env = clean_env(PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    server = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"mlflow models serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer on /ping within 180 s:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        example = (logged_model / "serving_input_example.json").read_text()
        answer = requests.post(
            f"{url}/invocations", data=example, headers={"Content-Type": "application/json"}, timeout=120
        )
        assert answer.status_code == 200, answer.text
        got = [row["label"] for row in answer.json()["predictions"]]
        import stance

        rows = json.loads(example)["dataframe_split"]
        frame = pd.DataFrame(rows["data"], columns=rows["columns"])
        assert got == [str(v) for v in stance.load_model(str(logged_model)).predict(frame)]
        # New statements, posted as records.
        records = json.dumps({"dataframe_records": NEW.to_dict(orient="records")})
        answer = requests.post(
            f"{url}/invocations", data=records, headers={"Content-Type": "application/json"}, timeout=120
        )
        assert [row["label"] for row in answer.json()["predictions"]] == [
            str(v) for v in stance.load_model(str(logged_model)).predict(NEW)
        ]
    finally:
        stop(server)
