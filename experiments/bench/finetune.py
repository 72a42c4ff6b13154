"""Fine-tuning throughput: our cross-encoder path against a bare sentence-transformers `CrossEncoderTrainer` call.

    python experiments/bench/finetune.py ours|bare [--rows 512] [--steps 32] [--model minilm|mpnet]
        [--checkpoint-steps N]

Both fine-tune MiniLM on the same first `rows` SemEval-2016 A training pairs (target, text) for `steps` steps, batch
16, max length 128, bfloat16 autocast where the CPU has it, and print one JSON line: pairs/s over the whole call
(model load, training, saving) and peak RSS. `ours` starts from an empty weights cache (a fresh temporary
STANCE_CACHE, the assembled base models linked in), so it trains; `--checkpoint-steps N` saves a resumable checkpoint
every N steps (the checkpoint overhead is the time against N=0). Time whole processes with /usr/bin/time -v or any
A/B command timer.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time

BATCH, MAX_LENGTH = 16, 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["ours", "bare"])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--model", default="minilm", help="ours: minilm or mpnet (a packaged model)")
    parser.add_argument("--checkpoint-steps", type=int, default=0, help="ours: a checkpoint every N steps")
    args = parser.parse_args()

    from stance.config import load_data
    from stance.data.schema import to_frame

    train = to_frame(load_data("semeval2016_task6")["train"]).head(args.rows)
    start = time.perf_counter()
    if args.path == "ours":
        ours(train, args.steps, args.model, args.checkpoint_steps)
    else:
        bare(train, args.steps)
    seconds = time.perf_counter() - start
    pairs = args.steps * BATCH
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"path": args.path, "pairs": pairs, "seconds": round(seconds, 2),
                      "pairs_per_s": round(pairs / seconds, 2), "peak_rss_mb": round(peak)}))  # fmt: skip


def ours(train, steps: int, base: str = "minilm", checkpoint_steps: int = 0) -> None:
    from pathlib import Path

    from stance.features.cache import cache_dir
    from stance.models.cross_encoder import CrossEncoderClassifier

    with tempfile.TemporaryDirectory() as cache:
        (cache_dir() / "models").mkdir(parents=True, exist_ok=True)
        Path(cache, "models").symlink_to(cache_dir() / "models")  # an assembled mpnet is not assembled again
        model = CrossEncoderClassifier(
            model=base, max_steps=steps, batch_size=BATCH, max_length=MAX_LENGTH, cache_dir=cache,
            show_progress=False, checkpoint_steps=checkpoint_steps,
        )  # fmt: skip
        model.fit(train, train["label"])
        assert not model.fit_cached_


def bare(train, steps: int) -> None:
    import numpy as np
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    from stance.features.finetune import resolve_precision
    from stance.features.pretrained import DEFAULT_MODEL, resolve_model_path

    classes, codes = np.unique(train["label"], return_inverse=True)
    model = CrossEncoder(resolve_model_path(DEFAULT_MODEL), num_labels=len(classes), max_length=MAX_LENGTH)
    data = Dataset.from_dict({"target": list(train["target"]), "text": list(train["text"]), "label": codes.tolist()})
    with tempfile.TemporaryDirectory() as out:
        args = CrossEncoderTrainingArguments(
            output_dir=out, max_steps=steps, learning_rate=3e-5, per_device_train_batch_size=BATCH,
            warmup_steps=0.1, weight_decay=0.01, seed=13, bf16=resolve_precision("auto") == "bfloat16",
            use_cpu=True, logging_steps=20, save_strategy="no", report_to="none", disable_tqdm=True,
        )  # fmt: skip
        CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=losses.CrossEntropyLoss(model)).train()
        model.save_pretrained(f"{out}/model")


if __name__ == "__main__":
    sys.exit(main())
