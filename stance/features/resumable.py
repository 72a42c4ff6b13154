"""Resumable fine-tunes: checkpoints beside the content-addressed weights, resumed by running the same command again.

With `checkpoint_steps=N`, a fine-tune saves the Hugging Face trainer's whole state (weights, optimizer, scheduler,
RNG, trainer state and so the data order) every N steps into `<cache>/finetuned/.checkpoints/<key>/`. The trainer
writes into `staging/` there; a checkpoint is renamed into place only when complete, and only then is the older one
deleted, so a crash, `kill -9`, the end of a time slot or a full disk leaves the last good checkpoint. The folder is
named by the weights' content address (base model, data, settings), so a checkpoint is only ever resumed by the fit
that made it; checkpoints of other configurations are named in one line and left alone.

Under `torchrun` every rank trains, rank 0 alone writes; ranks wait for each other around each rename.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from stance.features.cache import free_space

CHECKPOINTS = ".checkpoints"
IDENTITY = "identity.json"
_PREFIX = "checkpoint-"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# How the libraries that write checkpoints word a full disk (safetensors, torch.save, plain OSError); torch.save may
# only say "unexpected pos", so the free space left decides too.
_FULL_WORDS = ("No space left", "StorageFull", "file write failed", "Disk quota exceeded")
_NEARLY_FULL_BYTES = 16 * 2**20
log = logging.getLogger(__name__)


class DiskFullError(OSError):
    """A fine-tune ran out of disk space; the message names the folder, the free space and how to resume."""


def rank() -> int:
    """This process's rank under `torchrun` (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes in the `torchrun` job (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def export_slurm_ranks() -> None:
    """In a SLURM job of several tasks (hydra/launcher=slurm_ddp), set torch.distributed's variables from SLURM's."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export()  # RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK; one GPU per task


def barrier() -> None:
    """Wait for every rank of a data-parallel fit (nothing to wait for in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class Checkpoints:
    """The checkpoints of one fine-tune (`every` steps apart; 0: none), and what a resumed fit reports."""

    def __init__(self, root: Path, key: str, identity: dict[str, Any], every: int = 0):
        self.root, self.key, self.identity, self.every = root / CHECKPOINTS, key, identity, int(every)
        self.folder = self.root / key
        self.staging = self.folder / "staging"
        self.resumed_from = 0  # the step a resumed fit started at (0: from the start)
        self.total_steps = 0
        self.steps = 0

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.name.startswith(_PREFIX) and p.name[len(_PREFIX) :].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))

    def start(self) -> str | None:
        """The checkpoint to resume from, or None; clears half-written ones and names those of other configurations."""
        if not self.every:
            return None
        if rank() == 0:
            shutil.rmtree(self.staging, ignore_errors=True)  # a checkpoint cut short; never resumed
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / IDENTITY).write_text(json.dumps(self.identity, sort_keys=True, indent=1))
        barrier()
        found = self.complete()
        if found:
            self.resumed_from = int(found[-1].name[len(_PREFIX) :])
            return str(found[-1])
        self._explain_others()
        return None

    def _explain_others(self) -> None:
        """One line naming the newest checkpoint of another configuration of the same kind, and what differs."""
        others = []
        for identity_file in self.root.glob(f"*/{IDENTITY}"):
            if identity_file.parent == self.folder:
                continue
            try:
                other = json.loads(identity_file.read_text())
            except (OSError, ValueError):
                continue
            if other.get("kind") == self.identity.get("kind") and any(identity_file.parent.glob(f"{_PREFIX}*")):
                others.append((identity_file.stat().st_mtime, identity_file.parent.name, other))
        if not others:
            return
        _, name, other = max(others, key=lambda o: o[0])
        log.warning(
            "Not resuming checkpoint %s: it was made with a different %s. Starting %s at step 0.",
            name, _differences(other, self.identity), self.key,
        )  # fmt: skip

    def callback(self) -> Any:
        """A transformers `TrainerCallback` that publishes each complete checkpoint and reports the resumed step."""
        from transformers import TrainerCallback

        checkpoints = self

        class PublishCheckpoints(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                checkpoints.total_steps = int(state.max_steps)
                if checkpoints.resumed_from:
                    log.warning("resuming %s at step %d of %d", checkpoints.key, state.global_step, state.max_steps)
                    _tag_run(checkpoints)

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if state.global_step >= state.max_steps:  # the weights are saved next: no checkpoint of them
                    control.should_save = False
                self.saving_since = time.perf_counter()  # the trainer saves (if it does) right after this
                return control

            def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                barrier()  # every rank has written its part (its RNG state) before the rename
                if state.is_world_process_zero:
                    checkpoints.publish(int(state.global_step), time.perf_counter() - self.saving_since)
                barrier()

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                checkpoints.steps = int(state.global_step)

        return PublishCheckpoints()

    def publish(self, step: int, seconds: float = 0.0) -> None:
        """Rename the trainer's checkpoint of `step` (written in `seconds`) into place, then delete the older ones."""
        written = self.staging / f"{_PREFIX}{step}"
        final = self.folder / written.name
        os.replace(written, final)  # atomic: the folder holds complete checkpoints only
        for older in self.complete():
            if older != final:
                shutil.rmtree(older, ignore_errors=True)
        size = sum(f.stat().st_size for f in final.iterdir()) / 1e6
        log.info(
            "checkpoint of %s at step %d of %d: %s (%.0f MB, written in %.1f s)",
            self.key, step, self.total_steps, final, size, seconds,
        )  # fmt: skip

    def trainer_args(self, scratch: Path) -> dict[str, Any]:
        """The trainer's saving arguments: checkpoints into `staging/` every `every` steps, or none (in `scratch`)."""
        if not self.every:
            return {"output_dir": str(scratch), "save_strategy": "no"}
        return {"output_dir": str(self.staging), "save_strategy": "steps", "save_steps": self.every}

    def discard(self) -> None:
        """Delete the checkpoints once the weights are in place."""
        if rank() == 0:
            shutil.rmtree(self.folder, ignore_errors=True)

    def full_disk(self, err: BaseException, where: Path) -> DiskFullError | None:
        """A `DiskFullError` saying how to resume if `err` means the disk is full, else None."""
        if not is_disk_full(err, where):
            return None
        shutil.rmtree(self.staging, ignore_errors=True)  # the half-written checkpoint: space for the next try
        found = self.complete()
        kept = (
            f"The last good checkpoint is step {found[-1].name[len(_PREFIX) :]} ({found[-1]}); run the same command "
            "again to resume from it"
            if found
            else "No checkpoint was kept (set checkpoint_steps to save some); the fit starts again at step 0"
        )
        return DiskFullError(
            errno.ENOSPC,
            f"No space left while fine-tuning {self.key} ({type(err).__name__}: {str(err).splitlines()[0][:160]}). "
            f"{free_space(where)} {kept} once space is freed, or move the cache with STANCE_CACHE or the model's "
            "cache_dir.",
        )


def is_disk_full(err: BaseException, where: Path) -> bool:
    """Whether `err` (an OSError or a library's wrapper of one), raised while writing in `where`, means a full disk."""
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    if any(word in str(err) for word in _FULL_WORDS):
        return True
    try:
        return shutil.disk_usage(where).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two fine-tune identities, in words: 'data', 'base model', 'settings (lr 2e-05 -> 3e-05)'."""
    parts = []
    if old.get("base") != new.get("base"):
        parts.append(f"base model ({old.get('base')})")
    if old.get("data") != new.get("data"):
        parts.append("training data")
    old_settings, new_settings = old.get("settings") or {}, new.get("settings") or {}
    changed = [
        f"{k} {old_settings.get(k)} -> {new_settings.get(k)}"
        for k in sorted(set(old_settings) | set(new_settings))
        if old_settings.get(k) != new_settings.get(k)
    ]
    if changed:
        parts.append(f"configuration ({', '.join(changed)})")
    return " and ".join(parts) or "configuration"


def _tag_run(checkpoints: Checkpoints) -> None:
    """Say on the active MLflow run (if any) that this fine-tune resumed, and from which step."""
    import mlflow

    if mlflow.active_run() is not None and rank() == 0:
        mlflow.set_tag(
            f"finetune.resumed.{checkpoints.key}", f"step {checkpoints.resumed_from} of {checkpoints.total_steps}"
        )
