"""Classification as natural language inference (Yin et al. 2019; Laurer et al., "Less annotating, more classifying",
2023): each label is a hypothesis about the text, from a template in config (conf/hypotheses/<task>.yaml, e.g. "The
author of this text supports {target}."), and the label whose hypothesis a cross-encoder finds most entailed by the
text wins. Any target can be scored, and with an NLI-trained model no task training is needed (`zero_shot`).
With `hypotheses: null` the rows are NLI pairs (data=nli task=nli): the NLI stage, where a stance stage starts
(`model`: its weights folder, or its logged model's URI, e.g. models:/nli-minilm@champion).
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stance.data.schema import DataError
from stance.features import finetune
from stance.features.pretrained import DEFAULT_MODEL, ModelLoadError, is_logged, model_identity, resolve_model_path
from stance.models.cross_encoder import CrossEncoderClassifier, _load, pairs_of

ENTAILMENT, NOT_ENTAILMENT, CONTRADICTION = "entailment", "not_entailment", "contradiction"
NEGATIVES = ("one", "all")
FIELDS = ("target", "label")  # what a template may name
# NLI label spellings of the models and corpora in use (case and punctuation aside), by meaning.
_SPELLINGS = {
    "entail": ENTAILMENT, "entailed": ENTAILMENT, "entailment": ENTAILMENT, "contradiction": CONTRADICTION,
    "notentailed": NOT_ENTAILMENT, "notentailment": NOT_ENTAILMENT, "nonentailment": NOT_ENTAILMENT,
}  # fmt: skip
_PROBE = "\x00target\x00"  # a target no row has: templates that differ only in it still differ


class HypothesisError(DataError):
    """Templates that cannot label these rows, naming the config key (a DataError: `stance.train` says it in a line)."""


class EntailmentClassifier(CrossEncoderClassifier):
    """Labels rows by which label's hypothesis a cross-encoder finds most entailed by the text.

    `model`: any NLI cross-encoder (our NLI stage's weights folder, or a Hub name such as
    cross-encoder/nli-deberta-v3-base when online); the default MiniLM is not NLI-trained, so `fit` must train it.
    `hypotheses`: label -> template naming `{target}` (required where rows have targets) and optionally `{label}`;
    one template for every label of the training rows; or null for rows that are NLI pairs (the NLI stage).
    `zero_shot`: train nothing, use `model` as it is (as fitting on no rows does); its config's `id2label` must have
    an entailment label. Training is `CrossEncoderClassifier`'s: weights cached by content (base, pairs, head,
    templates, sampling, settings), resumable checkpoints, the loss logged to MLflow.

    Training pairs (`negatives`): a row's true hypothesis is entailed; with "one" (default) one other label's,
    drawn at random (seeded), is not: Laurer et al.'s one-true-one-false sampling, two pairs per row whatever the
    number of labels, balanced; "all" adds every other label's (k pairs per row). A model that is not NLI-trained gets
    a new binary head (entailment, not_entailment), as Laurer's universal classifiers have: "not true" is all a false
    hypothesis can be taught to be. An NLI model keeps its head (a stance stage continues the NLI stage): false
    hypotheses train towards its contradiction output, since one row's hypotheses exclude each other (the true one
    holding, the others are contradicted), or towards the other of two outputs.

    `predict_proba` scores all (row, label) pairs in one batched pass; a label's probability is its hypothesis's
    entailment probability (the output `id2label` names entailment, never a guessed index), normalised over the
    labels; columns in `classes_` order (the template labels, sorted).
    """

    class_weight = None  # the sampling scheme balances the pairs; kept for the cross-encoder's training path

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        hypotheses: Mapping[str, str] | str | None = None,
        zero_shot: bool = False,
        negatives: str = "one",
        epochs: int = 3,
        max_steps: int = -1,
        learning_rate: float = 3e-5,
        batch_size: int = 16,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        seed: int = 13,
        precision: str = "auto",
        device: str = "cpu",
        logging_steps: int = 20,
        checkpoint_steps: int = 0,
        cache_dir: str | None = None,
        show_progress: bool = True,
    ):
        self.model = model
        self.hypotheses = hypotheses
        self.zero_shot = zero_shot
        self.negatives = negatives
        self.epochs = epochs
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.seed = seed
        self.precision = precision
        self.device = device
        self.logging_steps = logging_steps
        self.checkpoint_steps = checkpoint_steps
        self.cache_dir = cache_dir
        self.show_progress = show_progress

    def fit(self, X: pd.DataFrame, y: Any) -> EntailmentClassifier:
        """Fine-tune on the rows as entailment pairs (or train nothing: zero_shot, or no rows)."""
        for fitted in ("weights_key_", "weights_path_"):
            self.__dict__.pop(fitted, None)  # a refit that trains nothing must not keep the last fit's weights
        if self.negatives not in NEGATIVES:
            raise HypothesisError(f"classifier.negatives must be one of {list(NEGATIVES)}, got {self.negatives!r}.")
        rows, labels = pairs_of(X), np.asarray(y, dtype=object).tolist()
        if len(rows) != len(labels):
            raise ValueError(f"X has {len(rows)} rows but y has {len(labels)} labels.")
        if any(not isinstance(label, str) for label in labels):
            raise HypothesisError(
                "classifier.hypotheses: the labels reach the entailment classifier as codes, not names (a one-vs-rest "
                "multi-label task, or an ensemble that encodes labels): it needs label names to make hypotheses."
            )
        targets, texts = [r[0] for r in rows], [r[1] for r in rows]
        if self.hypotheses is not None:  # checked before any model is read
            self.templates_ = templates(self.hypotheses, labels)
            check_targets(self.templates_, targets, at_fit=True)
        base = _base_labels(self.model, self.cache_dir)
        train = not self.zero_shot and bool(rows)
        if self.hypotheses is None:
            pairs, codes = self._nli_rows(texts, targets, labels, base, train)
        else:
            self.classes_ = np.asarray(sorted(self.templates_))
            pairs, codes = self._stance_rows(texts, targets, labels, base, train)
        if train:
            self._fine_tune(pairs, codes, "entailment")
            self.fine_tuned_ = True
        else:
            self._use_as_is()
        return self

    def _nli_rows(
        self, premises: list[str], hypotheses: list[str], labels: list[str], base: list[str], train: bool
    ) -> tuple[list[list[str]], list[int]]:
        """The NLI stage: rows are (premise, hypothesis) pairs with NLI labels, trained on as they are."""
        self.templates_ = None
        if not all(hypotheses):
            raise HypothesisError(
                "classifier.hypotheses is null: the rows are NLI pairs (text = premise, target = hypothesis; "
                "task=nli), but some have no target. Give templates for this task (conf/hypotheses/<task>.yaml)."
            )
        wanted = sorted(set(labels) or set(base))
        if not train:
            self.head_ = _nli_head(base, self.model)
        elif entailment_index(base) is not None and {canonical(w) for w in wanted} <= {canonical(b) for b in base}:
            self.head_ = list(base)  # an NLI model trained further keeps its head
        else:
            self.head_ = wanted
            if entailment_index(wanted) is None or len(wanted) < 2:
                raise HypothesisError(
                    f"classifier.hypotheses is null (NLI pairs) but the training labels {wanted} are not an "
                    "entailment label and others, so the weights could not label by entailment later; use task=nli "
                    "data (entailment / neutral / contradiction) or give templates (conf/hypotheses/<task>.yaml)."
                )
        self.entailment_index_ = entailment_index(self.head_)
        self.classes_ = np.asarray(wanted)
        self.columns_ = _columns(wanted, self.head_, self.model)
        code = {canonical(name): i for i, name in enumerate(self.head_)}
        return [[p, h] for p, h in zip(premises, hypotheses, strict=True)], [code[canonical(v)] for v in labels]

    def _stance_rows(
        self, texts: list[str], targets: list[str], labels: list[str], base: list[str], train: bool
    ) -> tuple[list[list[str]], list[int]]:
        """Task rows as entailment pairs: the true label's hypothesis entailed, `negatives` others not."""
        if not train:
            self.head_ = _nli_head(base, self.model)
            self.entailment_index_ = entailment_index(self.head_)
            return [], []
        entail = entailment_index(base)
        if entail is None:
            self.head_, entail, other = [ENTAILMENT, NOT_ENTAILMENT], 0, 1  # a new binary head
        else:
            self.head_, other = list(base), _negative_index(base, entail, self.model)
        self.entailment_index_ = entail
        pairs, truth = entailment_pairs(texts, targets, labels, self.templates_, self.negatives, self.seed)
        return pairs, [entail if true else other for true in truth]

    def _head(self) -> list[str]:
        return list(self.head_)  # the cross-encoder's training path builds and names the head from it

    def _settings(self) -> dict[str, Any]:
        """The cross-encoder's settings plus what makes entailment pairs: head, templates and negative sampling."""
        own = {"head": self._head(), "hypotheses": self.templates_, "negatives": self.negatives, "revision": 1}
        return super()._settings() | own

    def _use_as_is(self) -> None:
        """Zero-shot: predict with `model` itself; a folder (or a logged stage's cached copy) ships like weights."""
        self.fine_tuned_, self.fit_seconds_, self.fit_cached_ = False, 0.0, True
        self.resumed_from_step_, self.fit_steps_ = 0, 0
        local = resolve_model_path(self.model, self.cache_dir) if is_logged(self.model) else self.model
        folder = Path(local).expanduser()
        if folder.is_dir():  # a Hub name or packaged model is looked up by name; a folder is knowledge to ship
            marker = folder / finetune.COMPLETE  # weights fine-tuned here carry their content address
            digest = hashlib.sha256(model_identity(str(folder)).encode()).hexdigest()[:20]
            self.weights_key_ = marker.read_text().strip() if marker.is_file() else f"nli-model-{digest}"
            self.weights_path_ = str(folder)

    def _weights(self) -> str:
        """The weights to predict with: the fine-tuned ones, the zero-shot folder (or its logged copy), or `model`."""
        if getattr(self, "weights_key_", None) is None:
            return resolve_model_path(self.model, self.cache_dir)
        if not self.fine_tuned_ and Path(self.weights_path_, "config.json").is_file():
            return self.weights_path_
        return super()._weights()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Each label's entailment probability, normalised over the labels; columns in `classes_` order."""
        rows = pairs_of(X)
        if not rows:
            return np.zeros((0, len(self.classes_)))
        targets, texts = [r[0] for r in rows], [r[1] for r in rows]
        if self.templates_ is None:
            scores = self._score([[p, h] for p, h in zip(texts, targets, strict=True)])
            return _normalised(scores[:, self.columns_])
        check_targets(self.templates_, targets, at_fit=False)
        labels = [str(c) for c in self.classes_]
        pairs = [  # row by row, each label's hypothesis: one pass for all, reshaped to rows x labels below
            [text, hypothesis(self.templates_[label], label, target)]
            for text, target in zip(texts, targets, strict=True)
            for label in labels
        ]
        scores = self._score(pairs)[:, self.entailment_index_]
        return _normalised(scores.reshape(len(rows), len(labels)))

    def _score(self, pairs: list[list[str]]) -> np.ndarray:
        """The head's probabilities for every pair, in one batched pass."""
        import torch

        path = self._weights()
        try:
            encoder = _load(path, self.device)
        except Exception as err:  # the Hub client raises many types; all mean the same to the user
            raise finetune.base_model_error(self.model, "for the entailment classifier", err) from None
        found = _labels_of(encoder.model.config)
        if [canonical(n) for n in found] != [canonical(n) for n in self.head_]:
            raise ModelLoadError(f"The weights at {path} have outputs {found}, but were fitted as {self.head_}.")
        bf16 = finetune.resolve_precision(self.precision, self.device) == "bfloat16"
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=bf16):
            proba = encoder.predict(
                [tuple(p) for p in pairs], batch_size=64, apply_softmax=True, show_progress_bar=False
            )
        return np.asarray(proba, dtype=np.float64).reshape(len(pairs), len(self.head_))


def canonical(label: str) -> str:
    """An NLI label by meaning: case, spaces and punctuation aside, entail / entailed / entailment are one."""
    name = re.sub(r"[^a-z]", "", str(label).lower())
    return _SPELLINGS.get(name, name)


def entailment_index(labels: Sequence[str]) -> int | None:
    """The index of the one entailment label among a head's output names, or None."""
    found = [i for i, name in enumerate(labels) if canonical(name) == ENTAILMENT]
    return found[0] if len(found) == 1 else None


def templates(hypotheses: Mapping[str, str] | str, labels: Sequence[str]) -> dict[str, str]:
    """Label -> template (null: no such label), checked: fields {target}/{label} only, distinct texts, all labels."""
    if isinstance(hypotheses, str):  # one template for the labels the training rows name
        table = {label: hypotheses for label in sorted(set(labels))}
    elif isinstance(hypotheses, Mapping):
        table = {str(k): v for k, v in hypotheses.items() if v is not None}  # `1:` may be an int; null: no such label
    else:
        raise HypothesisError(f"classifier.hypotheses must map labels to templates, got {type(hypotheses).__name__}.")
    if not table:
        raise HypothesisError(
            "classifier.hypotheses is empty (or one template, and no training rows to name the labels): give one "
            "template per label, e.g. {FAVOR: 'The author of this text supports {target}.', AGAINST: ...}."
        )
    if len(table) < 2:
        raise HypothesisError(f"classifier.hypotheses has one label, {list(table)}: a classifier needs two or more.")
    seen: dict[str, str] = {}
    for label, template in sorted(table.items()):
        key = f"classifier.hypotheses.{label}"
        if not isinstance(template, str) or not template.strip():
            raise HypothesisError(f"{key} must be a non-empty template string, got {template!r}.")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as err:
            raise HypothesisError(f"{key}: {template!r} is not a template ({err}).") from None
        if fields - set(FIELDS):
            raise HypothesisError(f"{key} names {sorted(fields - set(FIELDS))}; it may name {{target}} and {{label}}.")
        text = hypothesis(template, label, _PROBE)
        if text in seen:
            raise HypothesisError(
                f"classifier.hypotheses.{seen[text]} and {key} give the same hypothesis "
                f"({text.replace(_PROBE, '{target}')!r}): the two labels could never be told apart."
            )
        seen[text] = label
    missing = sorted(set(labels) - set(table))
    if missing:
        raise HypothesisError(
            f"classifier.hypotheses has no template for label(s) {missing} of the training rows (it has "
            f"{sorted(table)}); add one per label, or map the labels onto these (data.label_map)."
        )
    return table


def hypothesis(template: str, label: str, target: str) -> str:
    """A label's hypothesis for one row's target."""
    return template.format(target=target, label=label)


def check_targets(table: Mapping[str, str], targets: Sequence[str], at_fit: bool) -> None:
    """Every template names {target} if rows have targets (checked at fit); every row has one if templates name it."""
    named = {label: "{target}" in template for label, template in table.items()}
    if at_fit and any(targets):
        without = sorted(label for label, has in named.items() if not has)
        if without:
            raise HypothesisError(
                f"classifier.hypotheses.{without[0]} has no {{target}}, but the rows have targets (a "
                "target-conditioned task such as stance): its hypothesis would be the same for every target."
            )
    if any(named.values()) and not all(targets):
        row = [bool(t) for t in targets].index(False)
        raise HypothesisError(
            f"Row {row} has no target, but classifier.hypotheses' templates name {{target}}; give every row a target, "
            "or use templates without it (conf/hypotheses/topic.yaml, claim.yaml) for a task without targets."
        )


def entailment_pairs(
    texts: Sequence[str],
    targets: Sequence[str],
    labels: Sequence[str],
    table: Mapping[str, str],
    negatives: str = "one",
    seed: int = 13,
) -> tuple[list[list[str]], list[bool]]:
    """(text, hypothesis) training pairs and whether each is entailed: the row's label's, then `negatives` others."""
    rng = np.random.default_rng(seed)
    names = sorted(table)
    pairs, truth = [], []
    for text, target, label in zip(texts, targets, labels, strict=True):
        others = [name for name in names if name != label]
        if negatives == "one":
            others = [others[int(rng.integers(len(others)))]]
        for name, true in [(label, True), *((other, False) for other in others)]:
            pairs.append([text, hypothesis(table[name], name, target)])
            truth.append(true)
    return pairs, truth


def _labels_of(config: Any) -> list[str]:
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def _base_labels(model: str, cache_dir: str | None) -> list[str]:
    """The output names of `model`'s head (`id2label`), read from its config alone."""
    from transformers import AutoConfig

    try:
        return _labels_of(AutoConfig.from_pretrained(resolve_model_path(model, cache_dir)))
    except ModelLoadError:
        raise
    except Exception as err:  # the Hub client raises many types; all mean the same to the user
        raise finetune.base_model_error(model, "for the entailment classifier", err) from None


def _nli_head(labels: list[str], model: str) -> list[str]:
    """`labels` if they name an entailment output; else the error that `model` is not NLI-trained."""
    if entailment_index(labels) is None:
        raise ModelLoadError(
            f"classifier.model {model!r} has no entailment label in its id2label {dict(enumerate(labels))}: it is "
            "not an NLI model, so it cannot label untrained (classifier.zero_shot=true, or fit on no rows). Train it "
            "(classifier.zero_shot=false; an NLI stage: data=nli task=nli classifier=entailment) or give an NLI model."
        )
    return list(labels)


def _negative_index(labels: list[str], entail: int, model: str) -> int:
    """The output a false hypothesis trains towards: contradiction, else the other of two outputs."""
    names = [canonical(n) for n in labels]
    if CONTRADICTION in names:
        return names.index(CONTRADICTION)
    if len(labels) == 2:
        return 1 - entail
    raise ModelLoadError(f"classifier.model {model!r} has outputs {labels}: none for a false hypothesis to train to.")


def _columns(classes: Sequence[str], head: Sequence[str], model: str) -> list[int]:
    """Each class's output index in the head (NLI pairs), matched by meaning."""
    index = {canonical(name): i for i, name in enumerate(head)}
    missing = [c for c in classes if canonical(c) not in index]
    if missing:
        raise ModelLoadError(f"classifier.model {model!r} has outputs {list(head)}, none of them {missing}.")
    return [index[canonical(c)] for c in classes]


def _normalised(scores: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (uniform where every score is 0)."""
    total = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, total, out=np.full_like(scores, 1.0 / scores.shape[1]), where=total > 0)
