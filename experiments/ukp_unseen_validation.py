"""Choose a recipe on UKP topics never trained on: each cross-topic fold's model on its held-out topic's val rows.

    python experiments/ukp_unseen_validation.py --tracking-uri sqlite:////path/to/mlflow.db [--experiment NAME ...]

A fold (`data.held_out=<topic>`, `held_out_rows=test`) trains on seven topics and tests on the eighth's official test
rows; the eighth's official val rows are used by neither, so they score each recipe on an unseen topic without
touching test. (A fold's own validation split is the seven training topics' val rows: in-topic fit, not transfer.)
For each experiment (default: the entailment folds and the frozen recipe's), the newest finished run per held-out
topic is scored; prints three-label macro-F1 per topic and the mean.
"""

from __future__ import annotations

import argparse

import pandas as pd
from mlflow.tracking import MlflowClient

import stance
from stance.config import load_data
from stance.data.schema import to_frame
from stance.evaluation.metrics import macro_f1

EXPERIMENTS = ("ukp_cross_topic", "ukp_cross_topic_frozen")


def fold_runs(client: MlflowClient, experiment: str) -> dict[str, str]:
    """Held-out topic -> the newest finished run of `experiment` that held it out."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"No experiment {experiment!r} in {client.tracking_uri}.")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'", order_by=["start_time ASC"])
    return {r.data.params["data.held_out"]: r.info.run_id for r in runs if r.data.params.get("data.held_out")}


def main() -> None:
    """Score every fold's logged model on its held-out topic's official val rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="the MLflow store holding the fold runs")
    parser.add_argument("--experiment", nargs="+", default=list(EXPERIMENTS), help="experiments to compare")
    args = parser.parse_args()
    client = MlflowClient(args.tracking_uri)
    val = to_frame(load_data("ukp_sentential_argmin")["validation"])
    table: dict[str, dict[str, float]] = {}
    for experiment in args.experiment:
        for held_out, run_id in sorted(fold_runs(client, experiment).items()):
            rows = val[val["target"] == held_out.replace("_", " ")]
            model = stance.load_model(f"runs:/{run_id}/model", tracking_uri=args.tracking_uri)
            score = 100 * macro_f1(rows["label"], model.predict(rows))
            table.setdefault(experiment, {})[f"{held_out} ({len(rows)} rows)"] = score
            print(f"{experiment} {held_out} run {run_id[:8]}: unseen-topic val macro-F1 {score:.1f}", flush=True)
    frame = pd.DataFrame(table).round(1)
    print(pd.concat([frame, frame.mean().round(1).to_frame("mean").T]).to_string())


if __name__ == "__main__":
    main()
