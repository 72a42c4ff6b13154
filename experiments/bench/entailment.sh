#!/usr/bin/env bash
# Issue 28's benchmarks, one after the other, into one store (the stance stage and the folds start from the NLI
# stage's models:/nli-minilm@champion):  bash experiments/bench/entailment.sh [store folder, default results] [step ...]
# Named steps (e.g. nli_stage stance_stage_again): only those, in this file's order; none named: all of them.
# A step that finished leaves a .done marker and is skipped when the script runs again; each step's log and
# /usr/bin/time -v figures are in <folder>/logs. Each fold is one step, trained for one epoch; a fold killed midway
# resumes from its last checkpoint (every 500 steps).
set -u
cd "$(dirname "$0")/../.."
OUT=$(mkdir -p "${1:-results}/logs" && cd "${1:-results}" && pwd)
export STANCE_DATA=${STANCE_DATA:-$(cd ../shared/data && pwd)} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
STORE=sqlite:///$OUT/mlflow.db
ONLY=" ${*:2} "
step() {  # a name, then `python -m stance.train` arguments (a sweep's -m first)
  local name=$1; shift
  [ -e "$OUT/logs/$name.done" ] && return 0
  [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $name "* ]] || return 0
  /usr/bin/time -v -o "$OUT/logs/$name.time" .venv/bin/python -m stance.train "$@" mlflow.tracking_uri=$STORE \
    > "$OUT/logs/$name.log" 2>&1 && touch "$OUT/logs/$name.done"
  echo "$(date -u +%FT%TZ) $name rc=$?" >> "$OUT/logs/steps.log"
}
UKP_TOPICS=abortion,cloning,death_penalty,gun_control,marijuana_legalization,minimum_wage,nuclear_energy,school_uniforms
# The default of `stance analyze` (frozen MiniLM, interact, MLP) as a recipe on UKP's cross-topic folds: a baseline,
# and its validation scores beside the entailment folds' for item 6 (minutes: every fold embeds the same sentences).
step ukp_frozen -m experiment=zero_shot_stance data=ukp_sentential_argmin data.held_out=$UKP_TOPICS \
  objective=validation/macro_f1 mlflow.register=null mlflow.experiment=ukp_cross_topic_frozen
ZERO="classifier.zero_shot=true mlflow.register=null mlflow.experiment=nli_zero_shot"
zero_shot() {  # an NLI stage alone on every benchmark: a step-name suffix, then its model
  step "z_vast$1" experiment=stance_stage $ZERO "$2"
  step "z_semeval$1" data=semeval2016_task6 features=identity classifier=entailment per_target=false $ZERO "$2"
  step "z_ukp$1" experiment=ukp_cross_topic data.held_out=null $ZERO "$2"
  step "z_pstance$1" experiment=pstance_cross_target data.held_out=null $ZERO "$2"
}
step nli_stage experiment=nli_stage
zero_shot "" classifier.model=models:/nli-minilm@champion
step stance_stage experiment=stance_stage
step stance_stage_plain experiment=stance_stage classifier.model=minilm mlflow.register=null
for topic in ${UKP_TOPICS//,/ }; do
  step "ukp_$topic" experiment=ukp_cross_topic data.held_out=$topic
done
for candidate in trump biden bernie; do
  step "pstance_$candidate" experiment=pstance_cross_target data.held_out=$candidate
done
for target in "Atheism" "Climate Change is a Real Concern" "Feminist Movement" "Hillary Clinton" "Legalization of Abortion"; do
  step "semeval_${target// /_}" experiment=stance_stage mlflow.register=null "data.held_out=\"$target\""
done
# The frozen recipe of ukp_frozen (above) on P-Stance's cross-target folds, beside its entailment folds.
step pstance_frozen -m experiment=zero_shot_stance data=pstance data.held_out=trump,biden,bernie \
  objective=validation/macro_f1 mlflow.register=null mlflow.experiment=pstance_cross_target_frozen
# The NLI stage with mpnet (1.7 h on 2 cores in bfloat16, about 4.3 h in float32; a kill loses at most the minutes
# since its last checkpoint, every 100 steps: run the script again to resume).
step nli_mpnet experiment=nli_stage classifier.model=mpnet classifier.checkpoint_steps=100 mlflow.register=nli-mpnet
# The leave-one-target-out folds again from their cached weights, each class's probability scaled by a weight tuned on
# VAST dev (tune_class_weights: fewer NONE); then the stance stage from this NLI stage on VAST, plain and so tuned.
for target in "Atheism" "Climate Change is a Real Concern" "Feminist Movement" "Hillary Clinton" "Legalization of Abortion"; do
  step "tuned_${target// /_}" experiment=stance_stage mlflow.register=null "data.held_out=\"$target\"" \
    tune_class_weights=true mlflow.experiment=stance_stage_tuned
done
step stance_stage_again experiment=stance_stage mlflow.register=null
step stance_stage_tuned experiment=stance_stage mlflow.register=null tune_class_weights=true \
  mlflow.experiment=stance_stage_tuned
# The mpnet NLI stage (nli_mpnet) with no task training on every benchmark, then its stance stage on the mix (1,781
# steps, about 2 h 10 min on 2 cores in bfloat16: resumable pieces, a checkpoint every 100 steps).
zero_shot _mpnet classifier.model=models:/nli-mpnet@champion
step stance_stage_mpnet experiment=stance_stage classifier.model=models:/nli-mpnet@champion \
  classifier.checkpoint_steps=100 mlflow.register=stance-entailment-mpnet
