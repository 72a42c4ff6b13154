"""Full-size reproductions: rerun named experiments in full and compare them with experiments/RESULTS.md.

    python experiments/bench/reproduce.py [EXPERIMENT ...] [--store DIR] [--fresh-cache] [--tolerance 0.005]

EXPERIMENT (default: semeval_best, the mpnet stacking) is a row of the "Every named experiment" table in RESULTS.md.
Each runs as `python -m stance.train experiment=NAME` on the whole corpus (no data.limit) into the MLflow store in DIR
(default: results/, the store of experiments/run_all.sh), timed from outside (wall time and peak RSS via wait4).
The test F_avg and macro-F1 the run prints are compared with the row's; the exit status is 1 when one differs by more
than the tolerance (0.005 = half a point: the same config, seed and data give the same score up to float noise).
`--fresh-cache` encodes from an empty STANCE_CACHE, to time a first run (semeval_best: ~10 min on two cores).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, run  # noqa: E402  (experiments/bench/run.py: subprocess timing and peak RSS via wait4)

RESULTS = ROOT / "experiments" / "RESULTS.md"
COLUMNS = {"test F_avg [95% CI]": "test/f_avg", "test macro-F1 [95% CI]": "test/macro_f1"}
HEADLINE = re.compile(r"\b(test/[a-z0-9_@]+)=([\d.]+)")
RUN_ID = re.compile(r"MLflow run id: (\w+)")


def reported(experiment: str) -> dict[str, float]:
    """The experiment's reported test figures (fractions) from the named-experiments table of RESULTS.md."""
    header: list[str] = []
    for line in RESULTS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "experiment":
            header = cells
        elif header and cells[0] == experiment:
            row = dict(zip(header, cells, strict=False))
            figures = {metric: row.get(column, "-") for column, metric in COLUMNS.items()}
            return {m: float(v.split()[0]) / 100 for m, v in figures.items() if re.match(r"[\d.]+", v)}
    raise SystemExit(f"{experiment}: no row in the named-experiments table of {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=["semeval_best"])
    parser.add_argument("--store", default="results", help="folder of the MLflow store (relative to the repository)")
    parser.add_argument("--fresh-cache", action="store_true", help="encode from an empty STANCE_CACHE")
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()
    store = (ROOT / args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="stance-reproduce-") as cache:
        env = {"STANCE_CACHE": cache} if args.fresh_cache else {}
        for name in args.experiments:
            expected = reported(name)
            uri = f"sqlite:///{store}/mlflow.db"
            cmd = [sys.executable, "-m", "stance.train", f"experiment={name}", f"mlflow.tracking_uri={uri}"]
            print(f"== {' '.join(cmd[1:])}", flush=True)
            wall, rss, output = run(cmd, env)
            measured = {k: float(v) for k, v in HEADLINE.findall(output)}
            run_id = RUN_ID.search(output)
            for metric, value in expected.items():
                got = measured.get(metric)
                ok = got is not None and abs(got - value) <= args.tolerance
                failed |= not ok
                shown = "missing" if got is None else f"{100 * got:.2f}"
                rows.append(
                    f"| {name} | {metric} | {100 * value:.2f} | {shown} | {'yes' if ok else 'NO'} | {wall / 60:.1f} "
                    f"| {rss:.0f} | {run_id.group(1)[:8] if run_id else '?'} |"
                )
    print("\n| experiment | metric | reported | measured | same | wall min | peak RSS MB | run |")
    print("|---|---|---:|---:|---|---:|---:|---|")
    print("\n".join(rows))
    print(f"\nStore: sqlite:///{store}/mlflow.db")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
