"""Prompts of classifier=llm and llm_endpoint: the template and label words checked, k-shot examples drawn, prompt
texts built."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stance.data.schema import DataError
from stance.models.cross_encoder import pairs_of

FIELDS = ("text", "target")  # what a prompt template may name
# Content-free texts of contextual calibration (Zhao et al. 2021, "Calibrate before use"): the label bias of a prompt.
CONTENT_FREE = ("N/A", "[MASK]", "")


class PromptError(DataError):
    """A prompt config that cannot label these rows, naming the config key (`stance.train` says it in a line)."""


def check_template(template: Any, targeted: bool | None = True) -> str:
    """The template, if it names {text}, and {target} exactly when the rows have targets (None: not known yet)."""
    if not isinstance(template, str) or not template.strip():
        raise PromptError(f"classifier.template must be a non-empty string, got {template!r}.")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise PromptError(f"classifier.template {template!r} is not a template ({err}).") from None
    needed = ("text", "target") if targeted else ("text",)
    missing = [f"{{{name}}}" for name in needed if name not in fields]
    if missing:
        raise PromptError(
            f"classifier.template has no {' or '.join(missing)}: the model would not see each row's "
            f"{' and '.join(m.strip('{}') for m in missing)}. Add it, e.g. "
            + ("'Text: {text}\\nTarget: {target}\\nStance:'." if targeted else "'Text: {text}\\nTopic:'.")
        )
    if fields - set(FIELDS):
        raise PromptError(
            f"classifier.template names {sorted(fields - set(FIELDS))}; it may name only {{text}} and {{target}} "
            "(write a literal brace as {{ or }})."
        )
    if targeted is False and "target" in fields:
        raise PromptError(
            "classifier.template names {target}, but these rows have no target (a task without one, e.g. claim or "
            "topic): the prompt would show an empty target. Use the task's prompt (prompt@classifier=<task>)."
        )
    return template


def label_words(labels: Any, train_labels: Sequence[Any] = ()) -> dict[str, str]:
    """Label -> verbalizer (null: no such label; a string with {label}: each label's name in it), checked."""
    if isinstance(labels, str):
        if "{label}" not in labels:
            raise PromptError(
                f"classifier.labels is a string, {labels!r}, without {{label}}: give a word per label, "
                "e.g. {FAVOR: favor}, or a pattern such as '{label}' (each label's own name)."
            )
        names = sorted({str(v) for v in train_labels})
        if not names:
            raise PromptError(
                f"classifier.labels is a pattern ({labels!r}) and there are no training rows to name the labels: "
                "give a word per label, e.g. classifier.labels='{World: world, Sports: sports}'."
            )
        labels = {name: labels.replace("{label}", name) for name in names}
    if not isinstance(labels, Mapping):
        raise PromptError(f"classifier.labels must map labels to words, e.g. {{FAVOR: favor}}, got {labels!r}.")
    table = {str(k): v for k, v in labels.items() if v is not None}
    for label, word in table.items():
        if not isinstance(word, str) or not word.strip():
            raise PromptError(f"classifier.labels.{label} must be a non-empty word, got {word!r}.")
    if len(table) < 2:
        raise PromptError(
            f"classifier.labels has {len(table)} label(s), {list(table)}: a classifier needs two or more."
        )
    missing = sorted({str(v) for v in train_labels} - set(table))
    if missing:
        raise PromptError(
            f"classifier.labels has no word for label(s) {missing} of the training rows (it has {sorted(table)}); "
            f"add one, e.g. classifier.labels.{missing[0]}=<word>, or map the labels onto these (data.label_map)."
        )
    return table


def prompt_rows(X: Any, y: Any, template: Any, labels: Any) -> tuple[list[list[str]], list[str], dict[str, str]]:
    """The (target, text) rows, their labels and each label's words, checked against the template and label words."""
    rows, train = pairs_of(X), np.asarray(y, dtype=object).tolist()
    if len(rows) != len(train):
        raise ValueError(f"X has {len(rows)} rows but y has {len(train)} labels.")
    if any(not isinstance(label, str) for label in train):
        raise PromptError(
            "classifier.labels: the labels reach the prompted model as codes, not names (a one-vs-rest multi-label "
            "task, or an ensemble that encodes labels): it needs label names to pick words for."
        )
    check_template(template, any(target for target, _ in rows) if rows else None)
    return rows, train, label_words(labels, train)


def draw_shots(X: Any, rows: list[list[str]], train: list[str], k: int, seed: int) -> list[dict[str, Any]]:
    """The k-shot examples (row id, label, target, text) drawn by `pick_shots`, as the prompt record keeps them."""
    ids = X.index.tolist() if isinstance(X, pd.DataFrame) else list(range(len(rows)))
    return [
        {"row": _plain(ids[i]), "label": train[i], "target": rows[i][0], "text": rows[i][1]}
        for i in pick_shots(train, int(k), seed)
    ]


def shot_counts(shots: list[dict[str, Any]]) -> dict[str, int]:
    """How many shots each label has."""
    return {label: int(n) for label, n in pd.Series([s["label"] for s in shots]).value_counts().sort_index().items()}


def _plain(value: Any) -> Any:
    """A row id as JSON can hold it (numpy integers are not)."""
    return value.item() if isinstance(value, np.generic) else value


def pick_shots(labels: Sequence[str], k: int, seed: int) -> list[int]:
    """Positions of `k` rows drawn without replacement, seeded, in turns over the labels (balanced where possible)."""
    if k < 0:
        raise PromptError(f"classifier.shots must be 0 or more, got {k}.")
    rng = np.random.default_rng(seed)
    pools = {
        label: list(rng.permutation([i for i, v in enumerate(labels) if v == label])) for label in sorted(set(labels))
    }
    chosen: list[int] = []
    while len(chosen) < k and any(pools.values()):
        for label in sorted(pools):  # a turn per label: each label as often as its rows allow
            if pools[label] and len(chosen) < k:
                chosen.append(int(pools[label].pop()))
    order = rng.permutation(len(chosen))  # interleaved, not grouped by label (models copy the last shot's label)
    return [chosen[i] for i in order]


def render(template: str, text: str, target: str) -> str:
    """One row's question: the template filled in."""
    return template.format(text=text, target=target)


def build_prompt(
    question: str,
    shots: Sequence[tuple[str, str]],
    instruction: str,
    separator: str,
    tokenizer: Any = None,
) -> str:
    """The text the label words are scored after: instruction, the shots (question, answer) and the question.

    With `tokenizer` (chat_template=true) the shots are user/assistant turns of the model's chat template and the
    answer starts the assistant turn; otherwise plain text, each answer after `separator`.
    """
    if tokenizer is None:
        blocks = [instruction.strip()] if instruction and instruction.strip() else []
        blocks += [f"{q}{separator}{a}" for q, a in shots]
        return "\n\n".join([*blocks, question])
    messages = chat_messages(question, shots, instruction)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chat_messages(question: str, shots: Sequence[tuple[str, str]], instruction: str) -> list[dict[str, str]]:
    """The chat turns of a prompt: each shot a user question and assistant answer, then the question."""
    messages: list[dict[str, str]] = []
    for q, a in shots:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": question})
    if instruction and instruction.strip():  # in the first user turn: not every chat template has a system role
        messages[0] = {"role": "user", "content": f"{instruction.strip()}\n\n{messages[0]['content']}"}
    return messages


def calibrated(proba: np.ndarray, bias: np.ndarray, targets: Sequence[str], row_targets: Sequence[str]) -> np.ndarray:
    """Each row's probabilities divided by its target's mean over the CONTENT_FREE texts (`bias`), renormalised."""
    bias = bias.reshape(len(targets), len(CONTENT_FREE), -1).mean(axis=1)  # per target, over the texts
    index = {target: i for i, target in enumerate(targets)}
    proba = proba / np.clip(bias[[index[target] for target in row_targets]], 1e-12, None)
    return proba / proba.sum(axis=1, keepdims=True)
