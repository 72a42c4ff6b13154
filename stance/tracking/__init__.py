"""MLflow runs: their params, metrics and tables, store and server checks, secret redaction, signals and sweeps."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`StanceModel`, which the code file of models logged before the split into modules imports from here."""
    if name == "StanceModel":
        from stance.tracking.pyfunc import StanceModel  # the alias module: see its docstring

        return StanceModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
