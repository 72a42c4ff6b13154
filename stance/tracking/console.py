"""What a run prints: third-party progress bars and chatter silenced unless `verbose`, and the rows per split."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sized

# Loggers that fill a console with lines a user cannot act on: MLflow's store set-up and model validation,
# matplotlib's "categorical units" notes on figures of string labels, and our encoder's per-call counts (it does not
# know which split it embeds; `verbose=true` shows them).
# httpx/httpx2: the `openai` client logs a line per request (classifier=llm_endpoint sends one per row).
NOISY_LOGGERS = ("mlflow", "alembic", "matplotlib", "stance.features.encoders", "httpx", "httpx2")
# Progress bars of a local, instant step: MLflow "Downloading artifacts", transformers "Loading weights".
QUIET_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_libraries(verbose: bool = False) -> None:
    """Silence library progress bars and INFO chatter (not warnings); `verbose` leaves everything as it was."""
    if verbose:
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)  # a value the user set wins; child processes (launchers) inherit it
    if "huggingface_hub" in sys.modules:  # imported already: it read the variable at import
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def split_counts(frames: Mapping[str, Sized]) -> str:
    """`rows per split: train 2914, validation 500, test 1249`."""
    return "rows per split: " + ", ".join(f"{split} {len(frame)}" for split, frame in frames.items())
