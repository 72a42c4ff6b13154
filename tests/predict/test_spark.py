"""Labelling a table on Spark (`stance.predict.spark`) with the quick default model: the labels of `stance predict`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def spark_session(tmp_path: Path, monkeypatch) -> object:
    """A local[2] Spark session whose Python workers run this interpreter; skipped locally without pyspark or Java."""
    import shutil

    problems = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problems.append("pyspark is not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None:
        problems.append("java is not on PATH (make install-java)")
    if problems:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Spark test: {'; '.join(problems)}")
        pytest.skip("; ".join(problems))
    from pyspark.sql import SparkSession

    # Workers inherit the environment: this venv's python, one torch thread each (two workers share two cores).
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    builder = SparkSession.builder.master("local[2]").appName("stance test").config("spark.ui.enabled", "false")
    return builder.config("spark.driver.memory", "1g").config("spark.sql.shuffle.partitions", "2").getOrCreate()


def statements_10k(data_root: Path) -> pd.DataFrame:
    """10,000 distinct (statement, target) pairs: 2,000 SemEval tweets, each toward five targets."""
    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame

    data = semeval2016_task6(root=str(data_root))
    texts = pd.concat([to_frame(data[split]) for split in ("train", "test")])["text"].drop_duplicates().head(2000)
    targets = ["Atheism", "Climate Change is a Real Concern", "Feminist Movement", "Hillary Clinton", "Brexit"]
    frame = pd.DataFrame([(text, target) for text in texts for target in targets], columns=["text", "target"])
    return frame.assign(id=[f"s{i:05d}" for i in range(len(frame))])[["id", "text", "target"]]


def test_spark_udf_gives_the_labels_of_stance_predict(logged_model, tmp_path, monkeypatch, data_root):
    from stance.predict.batch import predict_files
    from stance.predict.spark import label_frame

    monkeypatch.setenv("STANCE_CACHE", str(tmp_path / "cache"))  # shared: Spark's workers read the vectors
    frame = statements_10k(data_root)
    assert len(frame) == 10_000 and not frame.duplicated(["text", "target"]).any()
    source = tmp_path / "statements.parquet"
    frame.to_parquet(source, index=False)
    predict_files(str(logged_model), [source], tmp_path / "single.parquet", progress=False)
    single = pd.read_parquet(tmp_path / "single.parquet")

    spark = spark_session(tmp_path, monkeypatch)
    try:
        rows = spark.read.parquet(str(source)).repartition(2)
        labelled = label_frame(spark, rows, str(logged_model)).toPandas()
    finally:
        spark.stop()
    labelled = labelled.sort_values("id").reset_index(drop=True)
    assert labelled["id"].tolist() == single["id"].tolist() == frame["id"].tolist()
    assert labelled["label"].tolist() == single["label"].tolist()
    assert labelled["proba_FAVOR"].to_numpy() == pytest.approx(single["proba_FAVOR"].to_numpy(), abs=1e-5)
    assert labelled["label"].nunique() > 1
