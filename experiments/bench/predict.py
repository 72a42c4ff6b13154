"""Benchmarks of labelling files with a logged model (experiments/BENCHMARKS.md, "Labelling files").

    python experiments/bench/predict.py --model MODEL_DIR --sizes 20000,200000 [--spark] [--venv] [--work DIR]

For each size: `stance predict` on N distinct statements (whole process, fresh empty STANCE_CACHE: nothing is read
from a cache) against a bare loop in its own process (SentenceTransformer.encode + the model's own fitted
classifiers, no cache, no chunk files) over the same Parquet file, alternating; optionally Spark local[2] on the same
file (`python -m stance.predict.spark`), and the time from an empty venv (model requirements + wheel) to a first
prediction.
Results go to experiments/bench/predict_results.json; the Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import load, machine, run  # noqa: E402  (experiments/bench/run.py: subprocess timing and peak RSS via wait4)

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is experiments/bench/)
RESULTS = ROOT / "experiments" / "bench" / "predict_results.json"


def synthesize(n: int, path: Path, seed: int = 0) -> None:
    """N distinct statements: SemEval-2016 and P-Stance tweets with their own targets, then the same texts again
    with a suffix ` #<round>` (one more token) until N, shuffled. Written as Parquet (id, text, target)."""
    import numpy as np
    import pandas as pd

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import data_root, to_frame

    semeval = pd.concat([to_frame(split)[["text", "target"]] for split in semeval2016_task6().values()])
    pstance = pd.concat(
        pd.read_csv(p, usecols=["Tweet", "Target"]).rename(columns={"Tweet": "text", "Target": "target"})
        for p in sorted((data_root() / "pstance").glob("raw_*.csv"))
    )
    pool = pd.concat([semeval, pstance]).dropna()
    pool = pool[pool["text"].str.strip() != ""].drop_duplicates("text").reset_index(drop=True)
    rounds = [pool.assign(text=pool["text"] + (f" #{r}" if r else "")) for r in range(-(-n // len(pool)))]
    frame = pd.concat(rounds, ignore_index=True).head(n)
    frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
    assert frame["text"].is_unique
    frame.insert(0, "id", [f"s{i:07d}" for i in range(len(frame))])
    frame.to_parquet(path, index=False)


def _bare(model_dir: str, path: str, out: str, batch_size: str = "64") -> None:
    """The loop a user would write without stance: encode texts and targets, route to the fitted classifiers."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    import stance
    from stance.features.pretrained import DEFAULT_MODEL, resolve_model_path
    from stance.models.per_target import PerTarget

    start = time.perf_counter()
    model = stance.load_model(model_dir)
    encoder = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    classes = model.classes_
    labels = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=5000, columns=["text", "target"]):
        texts, targets = batch.column("text").to_pylist(), np.array(batch.column("target").to_pylist())
        size = int(batch_size)
        vectors = encoder.encode(texts, batch_size=size, normalize_embeddings=True, convert_to_numpy=True)
        names = sorted(set(targets))
        named = encoder.encode(names, batch_size=size, normalize_embeddings=True)
        target_vectors = dict(zip(names, named, strict=True))
        features = np.hstack([vectors, np.vstack([target_vectors[t] for t in targets])])
        proba = np.zeros((len(texts), len(classes)))
        for name in names:
            rows = targets == name
            if isinstance(model, PerTarget):
                pipeline = model.estimators_.get(name, model.fallback_)
            else:
                pipeline = model
            classifier = pipeline[-1]
            proba[np.ix_(rows, np.searchsorted(classes, classifier.classes_))] = classifier.predict_proba(
                features[rows]
            )
        labels += [str(c) for c in classes[proba.argmax(axis=1)]]
    seconds = time.perf_counter() - start
    pd.DataFrame({"label": labels}).to_parquet(out, index=False)
    print(json.dumps({"n": len(labels), "seconds": seconds}))


def _python() -> str:
    return sys.executable


def bench_size(model: str, n: int, work: Path, spark: bool, bare: bool = True) -> dict:
    """stance predict vs the bare loop (and Spark) on n distinct statements, each with a fresh cache."""
    import pandas as pd

    source = work / f"statements-{n}.parquet"
    if not source.exists():
        synthesize(n, source)
    out: dict = {"n": n, "load_before": load()}
    env = {"STANCE_CACHE": str(work / f"cache-predict-{n}"), "HF_HUB_OFFLINE": "1"}
    predicted = work / f"predict-{n}.parquet"
    cmd = [_python(), "-m", "stance.cli", "predict", model, str(source), "-o", str(predicted), "--no-progress"]
    wall, rss, _ = run(cmd, env)
    out["predict"] = {"seconds": wall, "per_second": n / wall, "peak_rss_mb": rss}
    if bare:
        bare_out = work / f"bare-{n}.parquet"
        wall, rss, _ = run([_python(), __file__, "_bare", model, str(source), str(bare_out)], {"HF_HUB_OFFLINE": "1"})
        out["bare"] = {"seconds": wall, "per_second": n / wall, "peak_rss_mb": rss}
        out["ratio"] = out["predict"]["per_second"] / out["bare"]["per_second"]
        labels = pd.read_parquet(predicted)["label"]
        out["labels_differing_from_bare"] = int((labels != pd.read_parquet(bare_out)["label"]).sum())
    if spark:
        spark_out = work / f"spark-{n}"
        spark_env = env | {"STANCE_CACHE": str(work / f"cache-spark-{n}"), "PYSPARK_PYTHON": _python()}
        cmd = [_python(), "-m", "stance.predict.spark", "--master", "local[2]", model, str(source), str(spark_out)]
        wall, _, _ = run(cmd + ["--partitions", "2"], spark_env | {"OMP_NUM_THREADS": "1"})
        labelled = pd.read_parquet(spark_out).sort_values("id").reset_index(drop=True)
        single = pd.read_parquet(predicted)
        out["spark"] = {
            "seconds": wall,
            "per_second": n / wall,
            "same_ids": labelled["id"].tolist() == single["id"].tolist(),
            "labels_differing": int((labelled["label"] != single["label"]).sum()),
        }
    out["load_after"] = load()
    return out


def timed(cmd: list[str], env: dict[str, str]) -> dict:
    """Run a command; its wall and CPU (user + system) seconds and peak RSS, from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": time.perf_counter() - start, "cpu": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}


def bench_pairs(model: str, n: int, work: Path, pairs: int) -> dict:
    """stance predict (A) and the bare loop (B) in turn, A B, B A, ..., each with a fresh cache; paired ratios.

    On a shared machine the load drifts, so each pair is compared on its own; CPU seconds (user + system) are less
    sensitive to other work than wall seconds, so both are given.
    """
    import shutil
    import statistics

    source = work / f"statements-{n}.parquet"
    if not source.exists():
        synthesize(n, source)
    cache = work / "cache-pairs"
    a_cmd = [_python(), "-m", "stance.cli", "predict", model, str(source), "-o", str(work / "pairs-a.parquet")]
    b_cmd = [_python(), __file__, "_bare", model, str(source), str(work / "pairs-b.parquet")]
    rows = []
    for i in range(pairs):
        got = {}
        for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
            shutil.rmtree(cache, ignore_errors=True)
            env = {"STANCE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
            got[side] = timed(a_cmd + ["--no-progress"] if side == "a" else b_cmd, env)
        rows.append(got | {"load": load()})
    return {
        "n": n,
        "pairs": rows,
        "ratio_wall": statistics.median(r["b"]["wall"] / r["a"]["wall"] for r in rows),
        "ratio_cpu": statistics.median(r["b"]["cpu"] / r["a"]["cpu"] for r in rows),
        "predict_per_second": n / statistics.median(r["a"]["wall"] for r in rows),
        "bare_per_second": n / statistics.median(r["b"]["wall"] for r in rows),
    }


def bench_venv(model: str, work: Path) -> dict:
    """Seconds from an empty venv to a first prediction: venv, pip install -r requirements.txt (wheel included)."""
    venv = work / "fresh-venv"
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"STANCE_CACHE": str(work / "cache-venv")}
    start = time.perf_counter()
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    subprocess.run([f"{venv}/bin/pip", "install", "-q", "-r", "requirements.txt"], cwd=model, env=env, check=True)
    installed = time.perf_counter()
    code = (
        "import stance, pandas as pd; print(stance.load_model(__import__('sys').argv[1]).predict("
        "pd.DataFrame({'text': ['We must act on climate now!'], 'target': ['Climate Change is a Real Concern']})))"
    )
    subprocess.run([f"{venv}/bin/python", "-c", code, model], env=env, check=True, cwd=work)
    done = time.perf_counter()
    return {"install_seconds": installed - start, "first_prediction_seconds": done - installed, "total": done - start}


def main() -> None:
    """Run the parts asked for and store their results."""
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        _bare(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A local model folder (the default experiment's model).")
    parser.add_argument("--sizes", default="20000")
    parser.add_argument("--spark", action="store_true")
    parser.add_argument("--venv", action="store_true")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare loop (e.g. when time is short)")
    parser.add_argument("--pairs", type=int, default=0, help="paired predict/bare runs at --pairs-size rows")
    parser.add_argument("--pairs-size", type=int, default=4000)
    parser.add_argument("--work", default="/tmp/stance-bench-predict")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    for n in map(int, filter(None, args.sizes.split(","))):
        result = bench_size(args.model, n, work, args.spark, not args.no_bare)
        results[f"size_{n}"] = result | {"finished": time.strftime("%F %T")}
        RESULTS.write_text(json.dumps(results, indent=1))
        print(json.dumps(results[f"size_{n}"]), flush=True)
    if args.pairs:
        results["pairs"] = bench_pairs(args.model, args.pairs_size, work, args.pairs) | {
            "finished": time.strftime("%F %T")
        }
        RESULTS.write_text(json.dumps(results, indent=1))
        print(json.dumps(results["pairs"]), flush=True)
    if args.venv:
        results["venv"] = bench_venv(args.model, work) | {"finished": time.strftime("%F %T")}
        RESULTS.write_text(json.dumps(results, indent=1))
        print(json.dumps(results["venv"]), flush=True)


if __name__ == "__main__":
    main()
