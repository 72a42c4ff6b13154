#!/usr/bin/env bash
# Regenerates every number in experiments/RESULTS.md, section by section, into one MLflow store (default ./results).
#   bash experiments/run_all.sh [STORE_DIR] [SECTION ...]
# SECTION: default selection named corpora claims topics article zero_shot (default: all, in this order). All of it
# takes many hours on two CPU cores (the fine-tuned experiments and the zero-shot mix dominate): run it with nohup and
# one section at a time if the session is short. Each run is tagged with its git commit (`git_commit`), and
# `stance results` prints it; RESULTS.md names the commit of every table.
set -euo pipefail
cd "$(dirname "$0")/.."
store="${1:-results}"
shift || true
sections=("${@:-default selection named corpora claims topics article zero_shot}")
mkdir -p "$store"
uri="sqlite:///$(cd "$store" && pwd)/mlflow.db"
export MLFLOW_TRACKING_URI="$uri"
py=.venv/bin/python
echo "commit $(git rev-parse --short HEAD), store $uri"

train() {  # one run; prints its run id or FAILED
  echo "== $*"
  $py -m stance.train "$@" mlflow.tracking_uri="$uri" 2>&1 | grep -E "MLflow run id|^error" || echo "FAILED: $*"
}

for section in ${sections[*]}; do
  case "$section" in
    default)  # "SemEval-2016 Task 6 A" / "The default experiment"
      train ;;
    selection)  # "Model selection with frozen MiniLM": the candidates, without logged models
      sel=(mlflow.experiment=selection mlflow.log_model=false)
      train -m classifier=logreg,svm tune_class_weights=false,true "${sel[@]}"
      train -m features=identity classifier=voting,stacking tune_class_weights=false,true "${sel[@]}"
      train -m features=tfidf classifier=svm,logreg "${sel[@]}"
      train -m features.target_mode=interact,none classifier.class_weight=balanced "${sel[@]}" ;;
    named)  # "Every named experiment, one run each" and the fine-tuned ones (semeval_cross_encoder, semeval_ensemble, clef_claims, ...)
      for name in $(ls conf/experiment | sed 's/\.yaml$//' | grep -v _tune); do
        train experiment="$name"
      done
      .venv/bin/stance results --tracking-uri "$uri" ;;
    corpora)  # "Other stance corpora" / "New corpora of issue 13: frozen default vs TF-IDF SVM"
      for name in covid19_stance ibm_argkp2021 pstance ibm_argq_30k; do
        train data="$name"
        train data="$name" features=tfidf classifier=svm
      done ;;
    claims)  # "Claims" / "Issue 16: claims in context": the validation grid, then the article ROC-AUC of the registered claim model
      $py experiments/clef_claims_search.py --test
      $py experiments/article_claims.py models:/claim-checkworthy@default ;;
    topics)  # "Topics"
      $py experiments/topic_check.py ;;
    article)  # "The example article": the default models on the example article
      $py experiments/article_analysis.py ;;
    zero_shot)  # "Zero-shot stance": VAST and leave-one-target-out SemEval per variant
      $py experiments/zero_shot.py ;;
    *) echo "unknown section $section" >&2; exit 2 ;;
  esac
done
