"""A sentence-transformers `CrossEncoder` fine-tuned on (target, text) pairs, as a scikit-learn classifier."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from stance.features import finetune, resumable
from stance.features.pretrained import DEFAULT_MODEL, ModelLoadError, model_identity, resolve_model_path
from stance.models.walk import model_parts

log = logging.getLogger(__name__)


class CrossEncoderClassifier(ClassifierMixin, BaseEstimator):
    """Reads `target` and `text` together ((target, text) pairs; ("", text) where the task has no target).

    Fine-tunes `model` (any sentence-transformers or Hugging Face encoder: name or folder) with sentence-transformers'
    `CrossEncoderTrainer` and cross-entropy loss; the weights are cached by content (see `stance.features.finetune`).
    epochs / max_steps (> 0 overrides epochs), learning_rate, batch_size, max_length, warmup_ratio, weight_decay and
    seed are the trainer's; class_weight="balanced" weights the loss by inverse class frequency; precision "auto"
    trains and predicts in bfloat16 autocast where the device has it natively. checkpoint_steps > 0 saves a resumable
    checkpoint every that many steps: the same fit run again continues from the last one (`stance.features.resumable`).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        epochs: int = 3,
        max_steps: int = -1,
        learning_rate: float = 3e-5,
        batch_size: int = 16,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        class_weight: str | None = None,
        seed: int = 13,
        precision: str = "auto",
        device: str = "cpu",
        logging_steps: int = 20,
        checkpoint_steps: int = 0,
        cache_dir: str | None = None,
        show_progress: bool = True,
    ):
        self.model = model
        self.epochs = epochs
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.seed = seed
        self.precision = precision
        self.device = device
        self.logging_steps = logging_steps
        self.checkpoint_steps = checkpoint_steps
        self.cache_dir = cache_dir
        self.show_progress = show_progress

    def _settings(self) -> dict[str, Any]:
        keys = ("epochs", "max_steps", "learning_rate", "batch_size", "max_length", "warmup_ratio", "weight_decay")
        settings = {k: getattr(self, k) for k in keys}
        precision = finetune.resolve_precision(self.precision, self.device)
        return settings | {"class_weight": self.class_weight, "seed": self.seed, "precision": precision}

    def fit(self, X: pd.DataFrame, y: Any) -> CrossEncoderClassifier:
        """Fine-tune on the rows' pairs, or reuse the cached weights of an identical fine-tune."""
        pairs = pairs_of(X)
        if len(pairs) != len(y):
            raise ValueError(f"X has {len(pairs)} rows but y has {len(y)} labels.")
        self.classes_, codes = finetune.label_codes(y)
        if len(self.classes_) < 2:
            raise ValueError(f"A classifier needs two classes or more; the training labels are all {self.classes_}.")
        self._fine_tune(pairs, codes, "cross-encoder")
        return self

    def _fine_tune(self, pairs: list[list[str]], codes: list[int], kind: str) -> None:
        """Train the head `_head()` on the pairs, or reuse the cached weights of an identical fine-tune of this kind."""
        base = model_identity(self.model)
        digest = finetune.data_digest(pairs, codes)
        saved = finetune.checkpoints(kind, base, digest, self._settings(), self.checkpoint_steps, self.cache_dir)
        train, timing = finetune.timed(lambda out: self._train(pairs, codes, out, saved))
        path, trained = finetune.train_once(saved.key, train, self.cache_dir, saved)
        self.weights_key_, self.weights_path_ = saved.key, str(path)
        self.base_identity_, self.fit_seconds_, self.fit_cached_ = base, timing["seconds"], not trained
        self.resumed_from_step_, self.fit_steps_ = saved.resumed_from, saved.steps
        done = f"trained in {timing['seconds']:.1f} s" if trained else "from cache"
        log.info("%s %s: %s", kind, saved.key, done)

    def _head(self) -> list[str]:
        """The names of the classification head's outputs, in index order: the classes (an entailment head differs)."""
        return [str(c) for c in self.classes_]

    def _train(self, pairs: list[list[str]], codes: list[int], out: Path, saved: resumable.Checkpoints) -> None:
        import torch
        import transformers
        from datasets import Dataset
        from sentence_transformers.cross_encoder import (
            CrossEncoder,
            CrossEncoderTrainer,
            CrossEncoderTrainingArguments,
            losses,
        )

        transformers.set_seed(self.seed)  # the new head's initial weights too: the same seed gives the same weights
        head = self._head()
        try:
            base_path = resolve_model_path(self.model, self.cache_dir)
            encoder = CrossEncoder(
                base_path,
                num_labels=len(head),
                max_length=self.max_length,
                device=self.device,
                model_kwargs={"ignore_mismatched_sizes": True},  # a base with another label set gets a new head
            )
        except ModelLoadError:
            raise
        except Exception as err:  # the Hub client raises many types; all mean the same to the user
            raise finetune.base_model_error(self.model, "for the cross-encoder", err) from None
        # The saved config names the outputs, so the weights say which one is which (an NLI head's "entailment").
        encoder.model.config.id2label = dict(enumerate(head))
        encoder.model.config.label2id = {name: i for i, name in enumerate(head)}
        data = Dataset.from_dict({"target": [p[0] for p in pairs], "text": [p[1] for p in pairs], "label": codes})
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(codes, minlength=len(head))
            weight = torch.tensor(len(codes) / (len(head) * np.maximum(counts, 1)), dtype=torch.float32)
        args = CrossEncoderTrainingArguments(
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            per_device_train_batch_size=self.batch_size,
            warmup_steps=self.warmup_ratio,  # transformers 5: a fraction below 1 is a ratio of all steps
            weight_decay=self.weight_decay,
            seed=self.seed,
            bf16=self._settings()["precision"] == "bfloat16",
            use_cpu=self.device == "cpu",
            logging_steps=self.logging_steps,
            report_to="none",
            disable_tqdm=not self.show_progress,
            dataloader_drop_last=False,
            ddp_find_unused_parameters=False,  # under torchrun: every parameter takes part in each step
            **saved.trainer_args(out.parent / "trainer"),
        )
        trainer = CrossEncoderTrainer(
            model=encoder,
            args=args,
            train_dataset=data,
            loss=losses.CrossEntropyLoss(encoder, weight=weight),
            callbacks=[finetune.loss_logger(saved.key), saved.callback()],
        )
        trainer.train(resume_from_checkpoint=saved.start())
        if trainer.is_world_process_zero():
            encoder.save_pretrained(str(out))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities (softmax over the fine-tuned head), columns in `classes_` order."""
        import torch

        pairs = pairs_of(X)
        if not pairs:
            return np.zeros((0, len(self.classes_)))
        encoder = _load(self._weights(), self.device)
        bf16 = finetune.resolve_precision(self.precision, self.device) == "bfloat16"
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=bf16):
            proba = encoder.predict(
                [tuple(p) for p in pairs], batch_size=64, apply_softmax=True, show_progress_bar=False
            )
        return np.asarray(proba, dtype=np.float64).reshape(len(pairs), len(self.classes_))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable class per row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def _weights(self) -> str:
        """The fine-tuned weights: where fit (or a logged model's loader) put them, else the shared cache."""
        if Path(self.weights_path_, finetune.COMPLETE).is_file():
            return self.weights_path_
        cached = finetune.cached_weights(self.weights_key_, self.cache_dir)
        if cached is None:
            raise ModelLoadError(
                f"The fine-tuned weights {self.weights_key_} are neither at {self.weights_path_} nor in the cache "
                f"{finetune.store_dir(self.cache_dir)}. Load the model with stance.load_model(uri), which brings "
                "the weights logged inside it, or refit."
            )
        return str(cached)


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> Any:
    from sentence_transformers.cross_encoder import CrossEncoder

    return CrossEncoder(path, device=device)


def pairs_of(X: Any) -> list[list[str]]:
    """(target, text) per row; ("", text) without a `target` column. A clear error for a missing or non-text cell."""
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame({"text": list(X)})
    if "text" not in X.columns:
        raise ValueError(f"Input frame lacks column 'text'; it has {list(X.columns)}. Give `text` (and `target`).")
    targets = X["target"] if "target" in X.columns else pd.Series("", index=X.index)
    for name, column in (("text", X["text"]), ("target", targets)):
        bad = ~column.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        if bad.any():
            row = X.index[bad.argmax()]
            raise ValueError(f"Input row {row}, column '{name}': expected a string, got {column[row]!r}.")
    return [[t, x] for t, x in zip(targets.tolist(), X["text"].tolist(), strict=True)]


def fine_tuned_parts(model: Any) -> list[Any]:
    """The estimators inside `model` that carry fine-tuned weights (`weights_key_`, `weights_path_`)."""
    return model_parts(model).fine_tuned


def attach_weights(model: Any, folders: dict[str, os.PathLike | str]) -> Any:
    """Point each fine-tuned part of a loaded model at its weights folder (by key), e.g. a logged model's artifacts."""
    for part in fine_tuned_parts(model):
        if part.weights_key_ in folders:
            part.weights_path_ = str(folders[part.weights_key_])
    return model
