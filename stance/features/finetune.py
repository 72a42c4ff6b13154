"""Fine-tuned weights: settings, content-addressed storage in the shared cache, and training through library trainers.

A fine-tune is keyed by what determines its weights: the base model's identity, a digest of the training data, the
hyperparameters and the seed. Weights live in `<cache>/finetuned/<key>/`, written to a temporary folder and renamed
into place when complete, under a file lock per key: a sweep over heads fine-tunes once, two jobs that need the same
weights train them once, and an interrupted fine-tune leaves no entry behind (only its checkpoints, if it was asked
to keep some: `stance.features.resumable`). Under `torchrun` rank 0 decides and writes, every rank trains.
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

from stance.features import resumable
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
    `checkpoint_steps` > 0 saves a resumable checkpoint every that many steps (it does not change the weights).
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
    checkpoint_steps: int = 0


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


def identity(kind: str, base: str, digest: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What determines fine-tuned weights: kind, base model identity, data digest and hyperparameters."""
    return {"kind": kind, "base": base, "data": digest, "settings": settings}


def weights_key(kind: str, base: str, digest: str, settings: dict[str, Any]) -> str:
    """The content address of fine-tuned weights: a digest of their `identity`."""
    payload = json.dumps(identity(kind, base, digest, settings), sort_keys=True)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


def checkpoints(
    kind: str, base: str, digest: str, settings: dict[str, Any], every: int, cache_dir: str | os.PathLike | None
) -> resumable.Checkpoints:
    """The resumable checkpoints of the fine-tune with this identity (`every` steps apart; 0: none)."""
    key = weights_key(kind, base, digest, settings)
    return resumable.Checkpoints(store_dir(cache_dir), key, identity(kind, base, digest, settings), every)


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
    key: str,
    train: Callable[[Path], None],
    cache_dir: str | os.PathLike | None = None,
    saved: resumable.Checkpoints | None = None,
) -> tuple[Path, bool]:
    """The weights folder for `key` and whether it was trained now: `train(folder)` runs only if no job has done it.

    `saved`: the fine-tune's checkpoints, deleted once the weights are in place; a full disk then names the last one.
    """
    if resumable.world_size() > 1:
        return _train_once_distributed(key, train, cache_dir, saved)
    found = cached_weights(key, cache_dir)
    if found:
        return found, False
    root = store_dir(cache_dir)
    with _locked(root / f".{key}.lock"):
        found = cached_weights(key, cache_dir)
        if found:
            return found, False
        _publish(key, train, root, saved)
    return root / key, True


def _publish(key: str, train: Callable[[Path], None], root: Path, saved: resumable.Checkpoints | None) -> None:
    """Train into a temporary folder and rename it to `root/key` when complete (under the key's lock)."""
    for stale in root.glob(f".{key}-*"):  # left by a killed fit (the lock is ours: no one else uses it)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{key}-") as tmp:
            staging = Path(tmp) / key
            train(staging)
            if resumable.rank() == 0:
                (staging / COMPLETE).write_text(key)
                os.replace(staging, root / key)  # atomic: readers see no folder or a complete one
    except Exception as err:
        full = (saved or resumable.Checkpoints(root, key, {})).full_disk(err, root)
        if full is None:
            raise
        raise full from None  # its message carries the library's first line
    if saved is not None:
        saved.discard()


def _train_once_distributed(
    key: str, train: Callable[[Path], None], cache_dir: str | os.PathLike | None, saved: resumable.Checkpoints | None
) -> tuple[Path, bool]:
    """`train_once` under torchrun: rank 0 takes the lock and decides for all; every rank trains, rank 0 writes."""
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # the process group (gloo on CPUs, NCCL on GPUs), as the trainer will use it
    root = store_dir(cache_dir)
    main = resumable.rank() == 0
    with _locked(root / f".{key}.lock") if main else contextlib.nullcontext():
        found = [str(cached_weights(key, cache_dir) or "") if main else ""]
        dist.broadcast_object_list(found, src=0)
        if found[0]:
            return Path(found[0]), False
        log.info("fine-tuning %s data-parallel: rank %d of %d", key, resumable.rank(), resumable.world_size())
        if main:
            _publish(key, train, root, saved)
        else:
            with tempfile.TemporaryDirectory(prefix=f"stance-rank{resumable.rank()}-") as tmp:
                train(Path(tmp) / key)  # its gradients join rank 0's; rank 0 saves the weights
        resumable.barrier()
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
    base_path: str,
    texts: list[str],
    codes: list[int],
    settings: Contrastive,
    device: str,
    out: Path,
    saved: resumable.Checkpoints,
) -> None:
    """Fine-tune a sentence-transformers body with SetFit's trainer (contrastive pairs) and save it into `out`."""
    import torch
    import transformers
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    try:
        model = SetFitModel.from_pretrained(base_path, device=device)
    except Exception as err:  # the Hub client raises many types; all mean the same to the user
        raise base_model_error(base_path, "to fine-tune", err) from None
    args = TrainingArguments(
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
        **saved.trainer_args(out.parent / "trainer"),
    )
    data = Dataset.from_dict({"text": texts, "label": list(codes)})
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[loss_logger(saved.key), saved.callback()])
    # SetFit's train_embeddings, with the resume argument it does not pass on: seeded pairs, so the data order holds.
    trainer.st_trainer.setfit_args = args
    trainer.st_trainer.args.ddp_find_unused_parameters = False  # under torchrun: every parameter takes part
    transformers.set_seed(settings.seed)
    max_pairs = -1 if args.max_steps == -1 else args.max_steps * args.embedding_batch_size
    trainer.st_trainer.train_dataset, trainer.st_trainer.loss = trainer.get_dataset(
        texts, data["label"], args=args, max_pairs=max_pairs
    )
    resume = saved.start()
    bf16 = resolve_precision(settings.precision, device) == "bfloat16"
    # No cast cache: it would keep the first bfloat16 copy of each weight for the whole fit, stale after each step.
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
        trainer.st_trainer.train(resume_from_checkpoint=resume)
    if resumable.rank() == 0:
        model.model_body.save(str(out))


def settings_dict(settings: Contrastive, device: str = "cpu") -> dict[str, Any]:
    """Hyperparameters that determine the weights, as a plain dict (precision resolved: it changes the result)."""
    determining = {k: v for k, v in asdict(settings).items() if k != "checkpoint_steps"}
    # revision 2: bfloat16 fits no longer train on stale weight casts; weights cached before it are not reused.
    return determining | {"precision": resolve_precision(settings.precision, device), "revision": 2}


def timed(train: Callable[[Path], None]) -> tuple[Callable[[Path], None], dict[str, float]]:
    """Wrap `train` so the returned dict receives its wall time in seconds."""
    seconds: dict[str, float] = {"seconds": 0.0}

    def run(folder: Path) -> None:
        start = time.perf_counter()
        train(folder)
        seconds["seconds"] = time.perf_counter() - start

    return run, seconds
