"""The console: library chatter is silenced by default and comes back with `verbose` (`stance.tracking.console`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A figure of class labels "0" / "1" (claim models) makes matplotlib log a "categorical units" note per figure.
FIGURE = """
import logging, sys
import pandas as pd
from stance.evaluation.figures import bar_figure
from stance.tracking.console import quiet_libraries
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
if sys.argv[1] != "default":
    quiet_libraries(verbose=sys.argv[1] == "verbose")
bar_figure(pd.Series([0.4, 0.6], index=["0", "1"]), "F1", "per class")
"""


@pytest.mark.parametrize(("mode", "noisy"), [("default", True), ("verbose", True), ("quiet", False)])
def test_matplotlib_categorical_units_notes_are_silenced_unless_verbose(mode, noisy):
    done = subprocess.run([sys.executable, "-c", FIGURE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("Using categorical units" in done.stderr) is noisy, done.stderr[-2000:]


def test_split_counts_names_every_split_with_its_rows():
    from stance.tracking.console import split_counts

    assert split_counts({"train": range(2914), "validation": range(500), "test": range(1249)}) == (
        "rows per split: train 2914, validation 500, test 1249"
    )
