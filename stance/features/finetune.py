"""Fine-tuned weights: settings, content-addressed storage in the shared cache, and training through library trainers.

A fine-tune is keyed by what determines its weights: the base model's identity, a digest of the training data, the
hyperparameters and the seed. Weights live in `<cache>/finetuned/<key>/`, written to a temporary folder and renamed
into place when complete, under a file lock per key: a sweep over heads fine-tunes once, two jobs that need the same
weights train them once, and an interrupted fine-tune leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stance.features.cache import cache_dir as default_cache_dir
from stance.features.pretrained import ModelLoadError

PRECISIONS = ("auto", "float32", "bfloat16")
COMPLETE = ".stance-complete"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contrastive:
    """SetFit-style contrastive fine-tuning of a sentence-transformers body on pairs drawn from the training split.

    Pairs of same-label texts are pulled together, different-label texts pushed apart (CosineSimilarityLoss);
    `num_iterations` pairs per text (SetFit's default sampling otherwise), for `epochs` or at most `max_steps` steps.
    """

    epochs: int = 1
    max_steps: int = -1
    num_iterations: int | None = 5
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_length: int = 128
    warmup_ratio: float = 0.1
    seed: int = 13
    precision: str = "auto"
    logging_steps: int = 10


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """ "bfloat16" or "float32": "auto" picks bfloat16 where the device computes it natively (AVX512-BF16/AMX, GPUs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    native = torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") and _cpu_has_bf16()
    return "bfloat16" if native else "float32"


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def label_codes(labels: Any) -> tuple[Any, list[int]]:
    """The sorted classes and each label's index among them, as the trainers see labels.

    Digests use the codes, not the names: names or the integer codes an ensemble passes its members
    (`VotingClassifier` encodes labels) then address the same weights.
    """
    import numpy as np

    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    return classes, [int(c) for c in codes]


def data_digest(inputs: Sequence[Any], codes: Sequence[int]) -> str:
    """sha256 over the training rows and label codes in order: the same rows give the same weights (same seed)."""
    digest = hashlib.sha256()
    for row, code in zip(inputs, codes, strict=True):
        digest.update(json.dumps([row, int(code)], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def weights_key(kind: str, base: str, digest: str, settings: dict[str, Any]) -> str:
    """The content address of fine-tuned weights: kind, base model identity, data digest and hyperparameters."""
    payload = json.dumps({"kind": kind, "base": base, "data": digest, "settings": settings}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


def store_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of all fine-tuned weights: `<cache>/finetuned`."""
    return default_cache_dir(cache_dir) / "finetuned"


def cached_weights(key: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The complete weights folder for `key`, or None."""
    folder = store_dir(cache_dir) / key
    return folder if (folder / COMPLETE).is_file() else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second job needing the same weights waits here, then finds them
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def train_once(
    key: str, train: Callable[[Path], None], cache_dir: str | os.PathLike | None = None
) -> tuple[Path, bool]:
    """The weights folder for `key` and whether it was trained now: `train(folder)` runs only if no job has done it."""
    found = cached_weights(key, cache_dir)
    if found:
        return found, False
    root = store_dir(cache_dir)
    with _locked(root / f".{key}.lock"):
        found = cached_weights(key, cache_dir)
        if found:
            return found, False
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{key}-") as tmp:
            staging = Path(tmp) / key
            train(staging)
            (staging / COMPLETE).write_text(key)
            os.replace(staging, root / key)  # atomic: readers see no folder or a complete one
    return root / key, True


def copy_weights(folder: Path, destination: Path) -> Path:
    """Copy a weights folder (e.g. into a logged model's artifacts)."""
    shutil.copytree(folder, destination, dirs_exist_ok=True)
    return destination


def loss_logger(name: str) -> Any:
    """A transformers `TrainerCallback` logging the training loss at each logging step to the active MLflow run."""
    import mlflow
    from transformers import TrainerCallback

    class LossToMlflow(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            loss = (logs or {}).get("loss", (logs or {}).get("embedding_loss"))
            if loss is not None and mlflow.active_run() is not None:  # a plain script logs nothing
                mlflow.log_metric(f"finetune/{name}/loss", float(loss), step=int(state.global_step))

    return LossToMlflow()


def base_model_error(name: str, purpose: str, err: Exception) -> Exception:
    """One clear error for a base model that cannot be loaded (offline Hub names most often)."""
    return ModelLoadError(
        f"Cannot load base model {name!r} {purpose}: {type(err).__name__}: {str(err).splitlines()[0][:200]}. "
        "Offline, give a local folder or a packaged model (e.g. minilm)."
    )


def train_contrastive(
    base_path: str, texts: list[str], codes: list[int], settings: Contrastive, device: str, out: Path, name: str
) -> None:
    """Fine-tune a sentence-transformers body with SetFit's trainer (contrastive pairs) and save it into `out`."""
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    try:
        model = SetFitModel.from_pretrained(base_path, device=device)
    except Exception as err:  # the Hub client raises many types; all mean the same to the user
        raise base_model_error(base_path, "to fine-tune", err) from None
    args = TrainingArguments(
        output_dir=str(out.parent / "checkpoints"),
        batch_size=settings.batch_size,
        num_epochs=settings.epochs,
        max_steps=settings.max_steps,
        num_iterations=settings.num_iterations,
        body_learning_rate=settings.learning_rate,
        warmup_proportion=settings.warmup_ratio,
        max_length=settings.max_length,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        report_to="none",
        save_strategy="no",
    )
    data = Dataset.from_dict({"text": texts, "label": list(codes)})
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[loss_logger(name)])
    bf16 = resolve_precision(settings.precision, device) == "bfloat16"
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        trainer.train_embeddings(texts, data["label"], args=args)
    model.model_body.save(str(out))


def settings_dict(settings: Contrastive, device: str = "cpu") -> dict[str, Any]:
    """Hyperparameters that determine the weights, as a plain dict (precision resolved: it changes the result)."""
    return asdict(settings) | {"precision": resolve_precision(settings.precision, device)}


def timed(train: Callable[[Path], None]) -> tuple[Callable[[Path], None], dict[str, float]]:
    """Wrap `train` so the returned dict receives its wall time in seconds."""
    seconds: dict[str, float] = {"seconds": 0.0}

    def run(folder: Path) -> None:
        start = time.perf_counter()
        train(folder)
        seconds["seconds"] = time.perf_counter() - start

    return run, seconds
