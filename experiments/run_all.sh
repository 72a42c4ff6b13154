#!/usr/bin/env bash
# Runs every named experiment into one MLflow store and prints the results table for experiments/RESULTS.md.
#   bash experiments/run_all.sh [STORE_DIR]     (default: ./results)
set -euo pipefail
cd "$(dirname "$0")/.."
store="${1:-results}"
mkdir -p "$store"
uri="sqlite:///$(cd "$store" && pwd)/mlflow.db"
for name in $(ls stance/conf/experiment | sed 's/\.yaml$//' | grep -v _tune); do
  echo "== $name"
  .venv/bin/python -m stance.train experiment="$name" mlflow.tracking_uri="$uri" \
    2>&1 | grep -E "MLflow run id|Error" || echo "FAILED: $name"
done
.venv/bin/stance results --tracking-uri "$uri"
# Zero-shot stance: VAST and leave-one-target-out SemEval, per variant (RESULTS.md, issue 13).
.venv/bin/python experiments/zero_shot.py
