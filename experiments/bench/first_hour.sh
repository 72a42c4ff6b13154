#!/usr/bin/env bash
# The eight first-hour tasks of issue 29, timed in a clone whose .venv `make run` made (the README tour):
#   bash experiments/bench/first_hour.sh /path/to/clone   (../shared beside the clone; prints one line per task)
# It writes mine.csv, statements.csv and conf/classifier/rf.yaml into the clone: use a throwaway one.
set -uo pipefail
cd "$1"
source .venv/bin/activate
export STANCE_DATA=$(cd ../shared/data && pwd) HF_HUB_OFFLINE=1
W=$(mktemp -d)
t() { local name=$1; shift; local s=$(date +%s.%N); "$@" > "$W/$name.log" 2>&1; local rc=$?; printf "%s\t%.1f s\trc=%s\n" "$name" "$(echo "$(date +%s.%N) - $s" | bc)" "$rc"; }
t 1_run_default python -m stance.train mlflow.register=semeval
t 1b_override python -m stance.train classifier=svm per_target=false
t 2_sweep python -m stance.train -m classifier=logreg,svm
t 3_ui_first_page bash -c 'mlflow ui --port 5077 > /dev/null 2>&1 & p=$!; for i in $(seq 120); do curl -sf "http://127.0.0.1:5077/ajax-api/2.0/mlflow/experiments/search?max_results=5" >/dev/null && break; sleep 0.5; done; kill $p'
t 4_load_in_script python -c '
import pandas as pd, stance
m = stance.load_model("models:/semeval@champion")
print(m.predict(pd.DataFrame({"text": ["NATO must not expand further east."], "target": ["Atheism"]})))'
python -c '
from stance.config import load_data
train = load_data("semeval2016_task6", "data.limit=600")["train"]
frame = train.to_pandas()
frame["label"] = frame["label"].map(train.features["label"].int2str)
frame[["text", "target", "label"]].to_csv("mine.csv", index=False)'
t 5_own_csv python -m stance.train data=files data.paths=mine.csv
printf 'id,text,target\n1,We must act on climate now!,Climate Change is a Real Concern\n2,God is a fairy tale for grown ups.,Atheism\n' > statements.csv
t 7_predict stance predict models:/semeval@champion statements.csv --output labelled.csv
mkdir -p conf/classifier && printf '_target_: sklearn.ensemble.RandomForestClassifier\nn_estimators: 200\n' > conf/classifier/rf.yaml
t 8_own_classifier_config python -m stance.train classifier=rf
t 6_analyze_first stance analyze ../shared/examples/news_security_guarantees.txt --target "NATO expansion to the east"
t 6b_analyze_again stance analyze ../shared/examples/news_security_guarantees.txt --target "NATO expansion to the east"
echo "logs in $W"
