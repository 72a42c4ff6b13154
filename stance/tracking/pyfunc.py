"""An alias kept for logged models: `StanceModel` now lives in `stance.artifact.pyfunc`.

Every model logged before `stance.artifact` existed carries its own copy of the MLflow code file, which runs
`from stance.tracking.pyfunc import StanceModel` when `mlflow.pyfunc.load_model` (or `mlflow models serve`, or a
Spark UDF) loads it. Without this module those models would no longer load as pyfunc. It is the one import from
`tracking` up into `artifact`, allowed by name in tests/test_layout.py; remove it when no such model is in use.
"""

from stance.artifact.pyfunc import StanceModel

__all__ = ["StanceModel"]
