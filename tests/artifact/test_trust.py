"""The trust policy (`stance.artifact.trust`): a model whose files would run code when loaded (a pickle, a skops file
naming a function, a path outside its folder, a class from outside scikit-learn and stance) is refused, and nothing
runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import stance
from stance.artifact import load, save, trust


def test_pipeline_with_a_foreign_type_is_not_loaded(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    path = save.dump_pipeline(FunctionTransformer(func=os.getcwd), tmp_path)
    with pytest.raises(trust.UntrustedModelError, match="posix.getcwd"):
        load.load_pipeline(path)


class RunsCode:
    """Unpickling this calls `os.mkdir(marker)`: a stand-in for any command a crafted pickle runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def crafted_model(folder: Path, pipeline: str, content: bytes) -> Path:
    """A model folder as an attacker would ship it: an MLmodel naming `pipeline`, and that file."""
    folder.mkdir()
    (folder / pipeline).write_bytes(content)
    (folder / "MLmodel").write_text(
        f"flavors:\n  python_function:\n    artifacts:\n      pipeline:\n        path: {pipeline}\n"
        f"        uri: {pipeline}\n    loader_module: mlflow.pyfunc.model\n"
    )
    return folder


def test_a_model_pointing_at_a_pickle_is_refused_and_runs_nothing(tmp_path):
    import pickle

    marker = tmp_path / "code-ran"
    folder = crafted_model(tmp_path / "model", "pipeline.joblib", pickle.dumps(RunsCode(marker)))
    with pytest.raises(trust.UntrustedModelError, match=r"pipeline.joblib is a pickle .*allow_pickle=True"):
        stance.load_model(str(folder))
    assert not marker.exists()
    stance.load_model(str(folder), allow_pickle=True)  # the caller's explicit choice: the file's code runs
    assert marker.exists()


def test_a_skops_file_naming_a_function_of_a_trusted_module_is_refused(tmp_path):
    """skops calls what a ConstructorFromReduceNode names; `stance.config.instantiate` would run `os.mkdir`."""
    import zipfile

    skops_io = trust.import_skops()
    marker = tmp_path / "code-ran"
    skops_io.dump(({"_target_": "os.mkdir", "path": str(marker)},), tmp_path / "args.skops")
    with zipfile.ZipFile(tmp_path / "args.skops") as archive:
        arguments = json.loads(archive.read("schema.json"))
    header = {key: arguments.pop(key) for key in ("protocol", "_skops_version")}
    call = {"__class__": "instantiate", "__module__": "stance.config", "__loader__": "ConstructorFromReduceNode"}
    buffer = tmp_path / "pipeline.skops"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps({**call, "content": arguments, "__id__": 1, **header}))
    folder = crafted_model(tmp_path / "model", "pipeline.skops", buffer.read_bytes())
    with pytest.raises(trust.UntrustedModelError, match="not classes of .*: stance.config.instantiate"):
        stance.load_model(str(folder))
    assert not marker.exists()


def test_a_model_pointing_outside_its_folder_is_refused(tmp_path):
    folder = crafted_model(tmp_path / "model", "../elsewhere.skops", b"")
    with pytest.raises(trust.UntrustedModelError, match="points outside the model folder"):
        stance.load_model(str(folder))
