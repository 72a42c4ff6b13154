"""Benchmarks of the embedding side, written to experiments/BENCHMARKS.md.

    python experiments/bench/run.py [--repeats N] [--only abcd]

(a) our encoder vs plain SentenceTransformer.encode, (b) the default experiment with a cold then a warm cache,
(c) a 6-job multirun over one encoder, (d) peak RSS of the default run and prediction throughput of a logged model.
Each measurement that needs its own process runs as `python experiments/bench/run.py _<worker> ...`, which prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is experiments/bench/)
OUT = ROOT / "experiments" / "BENCHMARKS.md"
RESULTS = ROOT / "experiments" / "bench" / "results.json"
NOTES = "<!-- notes: kept by experiments/bench/run.py -->"
EMBEDDED = re.compile(r"Embedded \d+ texts with .*?: (\d+) from cache, (\d+) encoded, ([\d.]+) s")
MULTIRUN = ["classifier=logreg,svm,ridge", "per_target=true,false"]
PRECISIONS = ("float32", "bfloat16")
METHOD = """## Method

- Every run is a subprocess with `STANCE_CACHE` and `mlflow.tracking_uri` in a fresh temp folder; wall time and
  peak RSS (`ru_maxrss` from `wait4`) are measured from outside.
- (a) one process, the same 2,000 distinct SemEval tweets, after a warm-up; each repeat runs plain
  `SentenceTransformer.encode(batch_size=64, normalize_embeddings=True)` and our `SentenceEmbedder.encode` with an
  empty cache folder (so it hashes, encodes and writes every vector), alternating which goes first; the ratio is the
  median of the paired ratios.
- (b) `python -m stance.train` (defaults) twice on one cache folder: cold, then warm. The embedding stage is the sum of
  the `Embedded ... s` lines that `stance.features.encoders` logs (disk-cache lookups, model load and encoding).
- (c) `python -m stance.train -m classifier=logreg,svm,ridge per_target=true,false` (Hydra's basic launcher: jobs
  run one after another in one process, so the encoder is loaded once and later jobs read the in-process memo),
  cold cache, against the median cold single run of (b).
- (d) a fresh process loads a model from (b) with `stance.load_model("runs:/<id>/model")` and predicts 10,000
  distinct statements (multi-target election tweets, then Perspectrum perspectives, each with its own target: most
  targets are unseen, so the per-target model routes them to its joint fallback) with an empty cache folder; the
  rate counts prediction only, model loading is given separately. Measured for the default model and for the
  default experiment trained with `features.precision=bfloat16`.
"""


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model and library versions of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    versions = subprocess.run(
        [sys.executable, "-c", "import torch, sentence_transformers as s, sklearn; print(torch.__version__, "
         "s.__version__, sklearn.__version__, torch.get_num_threads())"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "torch / threads": f"{versions[0]} / {versions[3]}",
        "sentence-transformers": versions[1],
        "scikit-learn": versions[2],
    }


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Run a command; returns its wall seconds, its peak RSS in MB and its combined output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def worker(name: str, *args: str) -> dict:
    """Run `experiments/bench/run.py _<name> args` in a fresh process and return the JSON it prints."""
    _, rss, text = run([sys.executable, str(Path(__file__).resolve()), f"_{name}", *args])
    return json.loads(text.strip().splitlines()[-1]) | {"peak_rss_mb": rss}


def train_cmd(store: Path, *overrides: str) -> list[str]:
    """`python -m stance.train` with tracking into `store` and Hydra outputs under it."""
    return [
        sys.executable, "-m", "stance.train", *overrides, "features.show_progress=false",
        f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db", f"hydra.run.dir={store}/outputs",
        f"hydra.sweep.dir={store}/multirun",
    ]  # fmt: skip


def embedding_seconds(output: str) -> tuple[float, int, int]:
    """Seconds spent in the embedder, texts read from the disk cache, and texts encoded, from a run's log."""
    rows = [(float(s), int(h), int(e)) for h, e, s in EMBEDDED.findall(output)]
    return sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows)


def bench_encoder(repeats: int, work: Path) -> dict:
    """(a) throughput of SentenceEmbedder.encode (cold disk cache) vs SentenceTransformer.encode, same process."""
    return worker("encode", str(repeats), str(work / "encode"))


def bench_cold_warm(repeats: int, work: Path) -> dict:
    """(b) + (d, RSS) the default experiment with a cold cache, then again warm, each repeat in a fresh store."""
    rows = []
    for i in range(repeats):
        store = work / f"cold-warm-{i}"
        row = {}
        for phase in ("cold", "warm"):
            wall, rss, output = run(train_cmd(store), {"STANCE_CACHE": f"{store}/cache"})
            seconds, hits, encoded = embedding_seconds(output)
            row |= {f"{phase}_wall": wall, f"{phase}_rss": rss, f"{phase}_embed": seconds}
            row |= {f"{phase}_hits": hits, f"{phase}_encoded": encoded}
        rows.append(row | _time_metrics(store))
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {"runs": rows}


def _runs(store: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    return client.search_runs([client.get_experiment_by_name("stance").experiment_id], order_by=["start_time ASC"])


def _time_metrics(store: Path) -> dict[str, float]:
    pairs = zip(("cold", "warm"), _runs(store), strict=True)
    return {f"{phase}_{k}": v for phase, r in pairs for k, v in r.data.metrics.items() if k.startswith("time/")}


def bench_multirun(repeats: int, work: Path) -> dict:
    """(c) the 3 classifiers x 2 settings multirun over one encoder, with a cold cache."""
    walls, rss = [], []
    for i in range(repeats):
        store = work / f"multirun-{i}"
        wall, peak, output = run(train_cmd(store, "-m", *MULTIRUN), {"STANCE_CACHE": f"{store}/cache"})
        assert output.count("MLflow run id:") == 6, output[-2000:]
        walls.append(wall)
        rss.append(peak)
    return {"wall": statistics.median(walls), "walls": walls, "peak_rss": statistics.median(rss)}


def bench_predict(repeats: int, work: Path) -> dict:
    """(d) predict 10,000 statements with a model loaded from a runs:/ URI, each in a fresh process, cold cache.

    Once with the default model (float32 MiniLM) and once with the default experiment trained with
    features.precision=bfloat16.
    """
    out = {}
    for precision in PRECISIONS:
        store = work / ("cold-warm-0" if precision == "float32" else f"predict-{precision}")
        if not (store / "mlflow.db").exists():
            run(train_cmd(store, f"features.precision={precision}"), {"STANCE_CACHE": f"{store}/cache"})
        uri, run_id = f"sqlite:///{store}/mlflow.db", _runs(store)[0].info.run_id
        rows = []
        for i in range(repeats):
            os.environ["STANCE_CACHE"] = str(work / f"predict-cache-{precision}-{i}")  # cold: no statement cached
            rows.append(worker("predict", uri, f"runs:/{run_id}/model"))
        os.environ.pop("STANCE_CACHE")
        keys = ("n", "load_seconds", "predict_seconds", "per_second", "peak_rss_mb")
        out[precision] = {k: statistics.median(r[k] for r in rows) for k in keys} | {"runs": rows}
    return out


def _encode_worker(repeats: str, work: str) -> None:
    """Same process, same 2,000 distinct SemEval tweets: plain encode vs ours (cold cache) in alternating order."""
    import numpy as np

    from stance.data.corpora.semeval import semeval2016_task6
    from stance.data.schema import to_frame
    from stance.features import encoders as features
    from stance.features.pretrained import DEFAULT_MODEL, load_encoder

    data = semeval2016_task6()
    texts = sorted({t for split in data.values() for t in to_frame(split)["text"]})
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:2000]]
    encoder = load_encoder(DEFAULT_MODEL)
    encoder.encode(texts[:128], batch_size=64)  # warm-up: first calls allocate and tune kernels
    plain, ours, warm = [], [], []
    for i in range(int(repeats)):
        features._MEMO.clear()
        embedder = features.SentenceEmbedder(target_mode="none", show_progress=False, cache_dir=f"{work}/{i}")
        # Alternate which goes first so drifting background load does not favour one side.
        for side in ("plain", "ours") if i % 2 == 0 else ("ours", "plain"):
            start = time.perf_counter()
            if side == "plain":
                reference = encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
                plain.append(time.perf_counter() - start)
            else:
                vectors = embedder.encode(texts)
                ours.append(time.perf_counter() - start)
        features._MEMO.clear()  # as a new process with a warm disk cache
        start = time.perf_counter()
        embedder.encode(texts)
        warm.append(time.perf_counter() - start)
        assert np.allclose(vectors, reference, atol=1e-5)
    ratio = statistics.median(p / o for p, o in zip(plain, ours, strict=True))
    rate = {name: len(texts) / statistics.median(s) for name, s in (("plain", plain), ("ours", ours), ("warm", warm))}
    print(json.dumps({"n": len(texts), "plain": plain, "ours": ours, "warm": warm, "rate": rate, "ratio": ratio}))


def _predict_worker(tracking_uri: str, model_uri: str) -> None:
    """Load a logged model and predict 10,000 distinct statements: election tweets and Perspectrum perspectives."""
    import mlflow
    import pandas as pd

    import stance
    from stance.data.corpora.multitarget import multitarget_stance_election2016
    from stance.data.corpora.perspectrum import perspectrum
    from stance.data.schema import to_frame

    corpora = (multitarget_stance_election2016, perspectrum)
    frames = [to_frame(split) for corpus in corpora for split in corpus().values()]
    statements = pd.concat(frames).drop_duplicates("text")[["text", "target"]].head(10000).reset_index(drop=True)
    mlflow.set_tracking_uri(tracking_uri)
    start = time.perf_counter()
    model = stance.load_model(model_uri)
    loaded = time.perf_counter()
    labels = model.predict(statements)
    done = time.perf_counter()
    assert len(labels) == len(statements) == 10000
    result = {"n": len(statements), "load_seconds": loaded - start, "predict_seconds": done - loaded}
    print(json.dumps(result | {"per_second": len(statements) / (done - loaded)}))


def report(info: dict[str, str], parts: dict[str, dict]) -> str:
    """BENCHMARKS.md: machine, commands, load, and each measurement against its goal."""
    a, b, c, d = (parts.get(k) for k in "abcd")
    lines = [
        "# Benchmarks",
        "",
        "Medians over repeated runs, written by `python experiments/bench/run.py` (all parts) or `--only <parts>`",
        "(which keeps the other parts' last results from `experiments/bench/results.json`). Each part states the load",
        "average before and after it; the benchmark's own processes account for about 1-2 on these 2 cores, more means",
        "other work was running.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "| part | command | finished (UTC) | minutes | repeats | load average before -> after (1/5/15 min) |",
        "| --- | --- | --- | --- | --- | --- |",
        *[
            f"| ({k}) | `{r['command']}` | {r['finished']} | {r['minutes']:.0f} | {r['repeats']} | "
            f"{r['load'][0]} -> {r['load'][1]} |"
            for k, r in sorted(parts.items())
        ],
        "",
        "| measurement | result | goal | met |",
        "| --- | --- | --- | --- |",
    ]

    def row(name: str, value: str, goal: str, ok: bool) -> None:
        lines.append(f"| {name} | {value} | {goal} | {'yes' if ok else 'NO'} |")

    if a:
        ratio = a["ratio"]
        row(
            f"(a) encode {a['n']} SemEval tweets, ours (cold cache) / plain SentenceTransformer.encode",
            f"{a['rate']['ours']:.0f} / {a['rate']['plain']:.0f} texts/s; median paired ratio {ratio:.2f}",
            ">= 0.95",
            ratio >= 0.95,
        )
        row("(a) ours with a warm disk cache (new process)", f"{a['rate']['warm']:.0f} texts/s", "", True)
    if b:
        speedup = b["cold_embed"] / max(b["warm_embed"], 1e-9)
        row(
            "(b) embedding stage, cold / warm cache",
            f"{b['cold_embed']:.1f} s / {b['warm_embed']:.2f} s = {speedup:.0f}x",
            ">= 20x",
            speedup >= 20,
        )
        row("(b) default experiment end to end, cold cache", f"{b['cold_wall']:.1f} s", "", True)
        row("(b) default experiment end to end, warm cache", f"{b['warm_wall']:.1f} s", "<= 15 s", b["warm_wall"] <= 15)
    if c and b:
        ratio = c["wall"] / b["cold_wall"]
        row(
            "(c) 6-job multirun (cold cache) / one cold single run",
            f"{c['wall']:.1f} s / {b['cold_wall']:.1f} s = {ratio:.2f}",
            "<= 1.5",
            ratio <= 1.5,
        )
    if b:
        row("(d) peak RSS, default run (cold / warm cache)", f"{b['cold_rss']:.0f} / {b['warm_rss']:.0f} MB",
            "<= 1536 MB", b["cold_rss"] <= 1536)  # fmt: skip
    for precision, p in [(k, d[k]) for k in PRECISIONS if d and k in d]:
        row(
            f"(d) predict {p['n']:.0f} statements, loaded model (runs:/ URI), cold cache, {precision} encoder",
            f"{p['per_second']:.0f} statements/s ({p['predict_seconds']:.1f} s; load {p['load_seconds']:.1f} s)",
            ">= 150/s",
            p["per_second"] >= 150,
        )
        row(f"(d) peak RSS of that process ({precision})", f"{p['peak_rss_mb']:.0f} MB", "", True)
    lines += ["", "## Details", ""]
    if a:
        lines.append(
            f"- (a) seconds per pass, plain {_fmt(a['plain'])}, ours {_fmt(a['ours'])}, warm {_fmt(a['warm'])}."
        )
    if b:
        lines.append(
            "- (b) per repeat (cold wall / warm wall / cold embed / warm embed, s): "
            + "; ".join(
                f"{r['cold_wall']:.1f} / {r['warm_wall']:.1f} / {r['cold_embed']:.1f} / {r['warm_embed']:.2f}"
                for r in b.get("runs", [])
            )
            + f". Warm run: {b['warm_hits']:.0f} texts from cache, {b['warm_encoded']:.0f} encoded. MLflow "
            "`time/*_seconds` (median, cold -> warm): "
            + ", ".join(f"{k[5:]} {b[k]:.1f} -> {b['warm_' + k[5:]]:.1f}" for k in b if k.startswith("cold_time/"))
            + ". The embedding stage is the sum of the `Embedded ... s` log lines of `stance.features.encoders`."
        )
    if c:
        lines.append(f"- (c) multirun walls: {_fmt(c['walls'])} s; peak RSS {c['peak_rss']:.0f} MB.")
    for precision, p in [(k, d[k]) for k in PRECISIONS if d and k in d]:
        lines.append(f"- (d) {precision}, per repeat, statements/s: {_fmt([r['per_second'] for r in p['runs']], 0)}.")
    return "\n".join(lines + ["", METHOD]) + "\n"


def _fmt(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def main() -> None:
    """Run the chosen benchmarks and write the report."""
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        {"_encode": _encode_worker, "_predict": _predict_worker}[sys.argv[1]](*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="abcd", help="which of a, b, c, d to run; the others keep their results")
    args = parser.parse_args()
    os.environ.setdefault("STANCE_DATA", str(ROOT.parent / "shared" / "data"))
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"parts": {}}
    parts = saved["parts"]
    steps = {"a": bench_encoder, "b": bench_cold_warm, "c": bench_multirun, "d": bench_predict}
    command = " ".join(["python", "experiments/bench/run.py", *sys.argv[1:]])
    info = machine()
    with tempfile.TemporaryDirectory(prefix="stance-bench-") as work:
        for key in args.only:
            start, before = time.perf_counter(), load()
            print(f"[{time.strftime('%H:%M:%S')}] ({key}) load {before}", flush=True)
            result = steps[key](args.repeats, Path(work))
            parts[key] = result | {
                "command": command,
                "repeats": args.repeats,
                "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "minutes": (time.perf_counter() - start) / 60,
                "load": [before, load()],
            }
            print(json.dumps({k: v for k, v in result.items() if k != "runs"}), flush=True)
            RESULTS.write_text(json.dumps({"machine": info, "parts": parts}, indent=1))
            OUT.parent.mkdir(parents=True, exist_ok=True)
            notes = OUT.read_text().partition(NOTES)[2] if OUT.exists() else ""  # hand-written, kept across runs
            OUT.write_text(report(info, parts) + (f"\n{NOTES}{notes}" if notes else ""))
    print(f"Wrote {OUT} and {RESULTS}")


if __name__ == "__main__":
    main()
