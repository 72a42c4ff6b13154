"""MLflow: runs and their logs, logged models and their trust policy, store checks, secret redaction and sweeps."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`StanceModel`, which the code file of models logged before the split into modules imports from here."""
    if name == "StanceModel":
        from stance.tracking.pyfunc import StanceModel

        return StanceModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
