"""Named experiments: `semeval_best` on a slice reproduces its recorded test F_avg; `semeval_tune` has a held-out
objective. The full-size reproduction (~10 min from an empty cache) is `make bench` (experiments/bench/reproduce.py)."""

from __future__ import annotations

import re

import pytest

from stance.experiment import train
from tests.conftest import compose
from tests.helpers import REPO

RESULTS = REPO / "experiments" / "RESULTS.md"


TARGETS = (
    "Atheism",
    "Climate Change is a Real Concern",
    "Feminist Movement",
    "Hillary Clinton",
    "Legalization of Abortion",
)
SLICE = 600  # rows per split: the whole code path (per-target stacking of TF-IDF SVM and mpnet) in about a minute


def recorded_test_f_avg(row_start: str) -> float:
    """The bold test F_avg of the RESULTS.md row starting with `row_start`, as a fraction."""
    row = next(line for line in RESULTS.read_text().splitlines() if line.startswith(row_start))
    return float(re.search(r"\*\*([\d.]+)\*\*", row).group(1)) / 100


@pytest.mark.slow
def test_semeval_best_on_a_slice_reproduces_its_recorded_number(make_cfg):
    recorded = recorded_test_f_avg(f"| `semeval_best data.limit={SLICE}`")
    result = train(make_cfg("experiment=semeval_best", f"data.limit={SLICE}"))
    assert set(result.model.estimators_) == set(TARGETS), "one stacking per target"
    measured = result.evaluation.metrics["test/f_avg"]
    assert measured == pytest.approx(recorded, abs=0.005), "same config, seed and data: same score (to float noise)"


# Settings that fit something on validation: a sweep scoring trials on a validation metric must not search them.
FITTED_ON_VALIDATION = ("tune_class_weights",)


def test_the_optuna_search_keeps_its_objective_a_held_out_estimate():
    cfg = compose("experiment=semeval_tune", hydra=True)
    searched = set(cfg.hydra.sweeper.optuna_config.params)
    assert cfg.objective.startswith("validation/") and searched
    assert not searched & set(FITTED_ON_VALIDATION) and cfg.tune_class_weights is False
