"""Result tables from MLflow runs, as Markdown for experiments/RESULTS.md."""

from __future__ import annotations

from typing import Any

import pandas as pd

MAX_TARGETS_SHOWN = 8


def _with_ci(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(f"test/{name}")
    if value is None:
        return "-"
    low, high = metrics.get(f"test/{name}_ci_low"), metrics.get(f"test/{name}_ci_high")
    interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None and high is not None else ""
    return f"{100 * value:.2f}{interval}"


def run_row(run: Any) -> dict[str, str]:
    """One run as a results row: test metrics with 95% CIs, per-target F_avg, time, memory, and the command."""
    m = run.data.metrics
    per_target = {k.split("/", 2)[2]: v for k, v in m.items() if k.startswith("test/f_avg/")}
    official = {k.split("/")[1]: v for k, v in m.items() if k in ("test/fnc_score",)}
    tokens = run.data.tags.get("overrides", "").split()
    overrides = " ".join(o for o in tokens if not o.startswith("mlflow.tracking_uri="))  # where, not what
    return {
        "experiment": run.data.tags.get("experiment_name", run.info.run_name),
        "test F_avg [95% CI]": _with_ci(m, "f_avg"),
        "test macro-F1 [95% CI]": _with_ci(m, "macro_f1"),
        "official": ", ".join(f"{k} {100 * v:.2f}" for k, v in official.items()) or "-",
        "val objective": f"{100 * m.get('validation/f_avg', m.get('validation/macro_f1', float('nan'))):.2f}",
        "per-target test F_avg": "; ".join(f"{t} {100 * v:.1f}" for t, v in sorted(per_target.items()))
        if 0 < len(per_target) <= MAX_TARGETS_SHOWN
        else f"({len(per_target)} targets: see per_target.csv)"
        if per_target
        else "-",
        "wall s": f"{m.get('time/total_seconds', float('nan')):.0f}",
        "peak RSS MB": f"{m.get('peak_rss_mb', float('nan')):.0f}",
        "command": f"`python -m stance.train {overrides}`".replace(" (defaults)", ""),
        "run": run.info.run_id[:8],
    }


def latest_runs(tracking_uri: str, experiments: list[str] | None = None) -> pd.DataFrame:
    """The newest finished top-level run of each MLflow experiment (or of the ones named), as results rows."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    chosen = [client.get_experiment_by_name(n) for n in experiments] if experiments else client.search_experiments()
    rows = []
    for experiment in [e for e in chosen if e is not None]:
        runs = client.search_runs(
            [experiment.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"]
        )
        top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and "test/macro_f1" in r.data.metrics]
        if top:
            rows.append(run_row(top[0]) | {"experiment": experiment.name})
    return pd.DataFrame(rows)
