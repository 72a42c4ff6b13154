"""Label a table on Spark with a logged model, through MLflow's `mlflow.pyfunc.spark_udf`.

    python -m stance.predict.spark --master 'local[2]' MODEL_URI IN OUT
    spark-submit "$(python -c 'import stance.predict.spark as s; print(s.__file__)')" MODEL_URI IN OUT   # on a cluster

IN and OUT are Parquet paths (local, HDFS, S3, DBFS: whatever the cluster reads). Every input column is kept and
the model's columns (`label`, `proba_<class>`, `score` for claims, `labels` for multi-label topics) are added.
Each executor loads the model once per Python worker; it needs the package and the embedding model installed (or
`env_manager="virtualenv"`/`"uv"`, which builds them from the model's requirements.txt) and a local cache folder
(`STANCE_CACHE`); docs/models.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a file (spark-submit): its folder, stance/, must not shadow top-level modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
from typing import Any  # noqa: E402

from stance.predict.batch import TARGET_TASKS  # noqa: E402


def model_task(model_uri: str) -> dict[str, Any]:
    """The logged model's task config (`task`, `multilabel`, `positive_label`)."""
    import mlflow
    from mlflow.models import Model

    meta = Model.load(Path(mlflow.artifacts.download_artifacts(model_uri)) / "MLmodel")
    return dict(meta.flavors["python_function"].get("config") or {})


def label_frame(
    spark: Any,
    frame: Any,
    model_uri: str,
    text_column: str = "text",
    target_column: str = "target",
    target: str | None = None,
    env_manager: str = "local",
) -> Any:
    """`frame` with the model's output columns added, computed on the executors by `mlflow.pyfunc.spark_udf`."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager=env_manager)  # result type: the model's signature
    if model_task(model_uri).get("task", "stance") not in TARGET_TASKS:
        target_value = F.lit("")
    elif target is not None:
        target_value = F.lit(target)
    else:
        target_value = F.col(target_column)
    inputs = F.struct(F.col(text_column).alias("text"), target_value.alias("target"))
    return frame.withColumn("_prediction", udf(inputs)).select("*", "_prediction.*").drop("_prediction")


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry point: MODEL_URI INPUT_PARQUET OUTPUT_PARQUET [--partitions N] [--target ...]."""
    from pyspark.sql import SparkSession

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_uri")
    parser.add_argument("input", help="Parquet file or folder of statements.")
    parser.add_argument("output", help="Parquet folder to write (replaced if it exists).")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--target-column", default="target")
    parser.add_argument("--target", default=None, help="One target for every row.")
    parser.add_argument("--partitions", type=int, default=None, help="Repartition the input (default: as read).")
    parser.add_argument("--env-manager", default="local", help="local, virtualenv or uv (mlflow.pyfunc.spark_udf).")
    parser.add_argument("--master", default=None, help="e.g. local[2] (default: what spark-submit was given).")
    args = parser.parse_args(argv)
    builder = SparkSession.builder.appName("stance predict")
    spark = (builder.master(args.master) if args.master else builder).getOrCreate()
    frame = spark.read.parquet(args.input)
    if args.partitions:
        frame = frame.repartition(args.partitions)
    labelled = label_frame(
        spark, frame, args.model_uri, args.text_column, args.target_column, args.target, args.env_manager
    )
    labelled.write.mode("overwrite").parquet(args.output)
    spark.stop()


if __name__ == "__main__":
    main()
