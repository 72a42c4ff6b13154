"""A language model behind an OpenAI-compatible server as a stance classifier (vLLM, llama.cpp, Ollama, TGI, OpenAI).

Each (target, text) row's prompt (prompts.py: template, instruction, k shots, as classifier=llm builds it) is sent
to the server, which answers in at most `max_tokens` tokens at temperature 0. Where it returns `logprobs`, the top
log-probabilities of the answer's first token are normalised over the label words (`predict_proba`); where it
returns none, the answer is parsed to one label word (one-hot). The instruction lists the words, and with `constrain`
the request carries the constraints servers honour (vLLM's `guided_choice`/`structured_outputs`, llama.cpp's
`grammar`; others ignore them, OpenAI refuses them: constrain=false). An answer that is no label word is an error
naming the rows, never a guess. The API key is read from the environment variable `api_key_env` names when requests
are sent; it is never stored on the estimator, so neither a logged model nor MLflow ever holds it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from stance.models.cross_encoder import pairs_of
from stance.models.endpoint_client import (
    Answer,
    EndpointError,
    ResponseCache,
    answer_all,
    make_client,
    request_key,
    safe_url,
    server_said,
)
from stance.models.llm import DEFAULT_LABELS, DEFAULT_TEMPLATE
from stance.models.prompts import (
    CONTENT_FREE,
    build_prompt,
    calibrated,
    chat_messages,
    check_template,
    draw_shots,
    prompt_rows,
    render,
    shot_counts,
)

DEFAULT_URL = "http://127.0.0.1:8000/v1"
APIS = ("chat", "completions")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
log = logging.getLogger(__name__)


class EndpointClassifier(ClassifierMixin, BaseEstimator):
    """Labels (target, text) rows by a served LM's answer: its first token's log-probabilities, else its words.

    `api`: chat (messages; instruction-tuned models) or completions (plain text; base models). `prices`: model name ->
    {input, output} in USD per 1M tokens (a model not listed costs 0: local servers). `cache`: answers are kept in
    <cache dir>/llm_endpoint.sqlite by (server, model, request), so a rerun sends no request.
    `calibrate`: contextual calibration as in classifier=llm (needs logprobs). `fit` trains nothing.
    """

    REQUIREMENTS = ("openai",)  # the client a logged model needs (stance.artifact.save pins it)

    def __init__(
        self,
        model: str | None = None,
        base_url: str = DEFAULT_URL,
        api: str = "chat",
        api_key_env: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        labels: dict[str, str | None] | None = None,
        instruction: str = "",
        separator: str = " ",
        shots: int = 0,
        calibrate: bool = False,
        seed: int = 13,
        max_tokens: int = 5,
        top_logprobs: int = 5,
        constrain: bool = True,
        extra_body: dict[str, Any] | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        concurrency: int = 4,
        cache: bool = True,
        cache_dir: str | None = None,
        prices: dict[str, dict[str, float]] | None = None,
        show_progress: bool = True,
    ):
        self.model = model
        self.base_url = base_url
        self.api = api
        self.api_key_env = api_key_env
        self.template = template
        self.labels = labels
        self.instruction = instruction
        self.separator = separator
        self.shots = shots
        self.calibrate = calibrate
        self.seed = seed
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self.constrain = constrain
        self.extra_body = extra_body
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.cache = cache
        self.cache_dir = cache_dir
        self.prices = prices
        self.show_progress = show_progress

    def fit(self, X: pd.DataFrame, y: Any) -> EndpointClassifier:
        """Check the config and the prompt and pick the shots; nothing is sent to the server."""
        self._check_config()
        self._api_key()  # a missing variable is said now, not after the shots
        rows, train, words = prompt_rows(X, y, self.template, DEFAULT_LABELS if self.labels is None else self.labels)
        self.classes_ = np.asarray(sorted(words))
        self.words_ = {label: words[label] for label in self.classes_}
        self.shots_ = draw_shots(X, rows, train, self.shots, self.seed)
        if len(self.shots_) < int(self.shots):
            log.warning("classifier.shots=%d, but the training rows give %d.", self.shots, len(self.shots_))
        if rows:
            log.info(
                "classifier=llm_endpoint trains nothing: fit picked %d shot(s) from %d training rows%s.",
                len(self.shots_), len(rows), f", by label {shot_counts(self.shots_)}" if self.shots_ else "",
            )  # fmt: skip
        self.model_identity_ = f"{self.model}@{safe_url(self.base_url)}"
        self.prompt_record_ = {
            "model": self.model, "model_identity": self.model_identity_, "endpoint": safe_url(self.base_url),
            "api": self.api, "template": self.template, "instruction": self._instruction(),
            "separator": self.separator, "labels": self.words_, "calibrate": self.calibrate, "seed": self.seed,
            "shots": self.shots_, "max_tokens": self.max_tokens, "top_logprobs": self.top_logprobs,
            "constrain": self.constrain, "extra_body": dict(self.extra_body or {}),
        }  # fmt: skip
        self.usage_ = {"requests": 0, "cached_requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        return self

    def _check_config(self) -> None:
        """One error per bad setting, naming its key and the fix."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise EndpointError(
                "classifier.model is not set: give the model name the server serves (its /v1/models lists them), "
                "e.g. classifier.model=gpt-4o-mini or classifier.model=llama3.2."
            )
        if not isinstance(self.base_url, str) or not re.match(r"^https?://[^/\s]+", self.base_url):
            raise EndpointError(
                f"classifier.base_url must be an http(s) URL of an OpenAI-compatible API, e.g. {DEFAULT_URL}, got "
                f"{safe_url(str(self.base_url))!r}."
            )
        if self.api not in APIS:
            raise EndpointError(
                f"classifier.api must be chat (instruction-tuned models) or completions (base models), got "
                f"{self.api!r}."
            )
        whole = {"shots": self.shots, "max_tokens": self.max_tokens, "top_logprobs": self.top_logprobs,
                 "max_retries": self.max_retries, "concurrency": self.concurrency}  # fmt: skip
        least = {"max_tokens": 1, "concurrency": 1}
        for key, value in whole.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < least.get(key, 0):
                raise EndpointError(f"classifier.{key} must be a whole number >= {least.get(key, 0)}, got {value!r}.")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise EndpointError(f"classifier.timeout must be seconds > 0, got {self.timeout!r}.")
        for name, price in (self.prices or {}).items():
            if not isinstance(price, dict) or set(price) - {"input", "output"}:
                raise EndpointError(
                    f"classifier.prices.{name} must be {{input: <USD per 1M tokens>, output: <USD per 1M tokens>}}, "
                    f"got {price!r}."
                )
        if not isinstance(self.extra_body, dict | type(None)):
            raise EndpointError(f"classifier.extra_body must map request fields to values, got {self.extra_body!r}.")

    def _api_key(self) -> str | None:
        """The key from the variable `api_key_env` names (read when needed, never kept); None without one."""
        name = self.api_key_env
        if name in (None, ""):
            return None
        if not isinstance(name, str) or not _VARIABLE.match(name):
            # The value is not repeated: it may be a key pasted in by mistake.
            raise EndpointError(
                "classifier.api_key_env must be the NAME of an environment variable holding the key (e.g. "
                "OPENAI_API_KEY), not the key itself: put the key in that variable."
            )
        key = os.environ.get(name, "")
        if not key.strip():
            raise EndpointError(
                f"classifier.api_key_env names the environment variable {name}, which is not set: export {name}=<key> "
                "before the run, or set classifier.api_key_env=null for a server that needs no key."
            )
        return key.strip()

    def _instruction(self) -> str:
        """The instruction, ending with the label words to answer with unless it already names them all."""
        words = list(self.words_.values())
        text = (self.instruction or "").strip()
        if all(w.lower() in text.lower() for w in words):
            return text
        return f"{text} Answer with one of: {', '.join(words)}.".strip()

    def prompts(self, X: pd.DataFrame) -> list[Any]:
        """Each row's prompt as sent: a text (api=completions) or a list of chat messages (api=chat)."""
        return self._prompts(pairs_of(X))

    def _prompts(self, rows: list[list[str]]) -> list[Any]:
        shots = [(render(self.template, s["text"], s["target"]), self.words_[s["label"]]) for s in self.shots_]
        questions = [render(self.template, text, target) for target, text in rows]
        if self.api == "chat":
            return [chat_messages(q, shots, self._instruction()) for q in questions]
        return [build_prompt(q, shots, self._instruction(), self.separator) for q in questions]

    def _body(self, prompt: Any) -> dict[str, Any]:
        """One request's body: the prompt and every parameter (all of it keys the cache)."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": int(self.max_tokens), "temperature": 0}
        body["messages" if self.api == "chat" else "prompt"] = prompt
        if self.top_logprobs:
            body |= {"logprobs": True, "top_logprobs": self.top_logprobs} if self.api == "chat" else {
                "logprobs": self.top_logprobs
            }  # fmt: skip
        if self.constrain:  # the fields themselves are `_constraints`, sent where the server takes them
            body["constrain"] = True
        return body | dict(self.extra_body or {})

    def _constraints(self) -> dict[str, Any]:
        """Fields that restrict the answer to a label word: vLLM's (old and new names) and llama.cpp's grammar."""
        if not self.constrain:
            return {}
        words = list(self.words_.values())
        grammar = "root ::= " + " | ".join(json.dumps(w) for w in words)
        return {"guided_choice": words, "structured_outputs": {"choice": words}, "grammar": grammar}

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's probabilities over `classes_`: from the answer's logprobs, else one-hot from its words."""
        rows = pairs_of(X)
        if not rows:
            return np.zeros((0, len(self.classes_)))
        self._check_config()
        check_template(self.template, any(target for target, _ in rows))
        targets = sorted({target for target, _ in rows}) if self.calibrate else []
        free = [[t, text] for t in targets for text in CONTENT_FREE]
        # The cache key is the logical request (constrain=true or not), whichever constraint fields the server takes.
        keys = [request_key(self.base_url, self.api, self._body(p)) for p in self._prompts(rows + free)]
        bodies = [{k: v for k, v in self._body(p).items() if k != "constrain"} for p in self._prompts(rows + free)]
        client = make_client(self.base_url, self._api_key(), float(self.timeout), int(self.max_retries))
        cache = ResponseCache(self.cache_dir, enabled=bool(self.cache))
        start = time.perf_counter()
        try:
            answers, progress = answer_all(
                client,
                self.api,
                bodies,
                keys,
                cache,
                self.concurrency,
                self._describe,
                self.show_progress,
                optional=self._constraints(),
            )
        finally:
            cache.close()
        self.statements_per_second_ = len(rows) / max(time.perf_counter() - start, 1e-9)
        self._count(progress)
        proba, by_logprobs = self._score(answers[: len(rows)])
        self.scored_by_ = {"logprobs": int(by_logprobs.sum()), "answer": int(len(rows) - by_logprobs.sum())}
        log.info(
            "classifier=llm_endpoint labelled %d rows (%d requests sent, %d from the cache; %s by logprobs): "
            "%.2f statements/s.", len(rows), progress.sent, progress.cached, self.scored_by_["logprobs"],
            self.statements_per_second_,
        )  # fmt: skip
        if not self.calibrate:
            return proba
        bias, free_by_logprobs = self._score(answers[len(rows) :], content_free=True)
        if not free_by_logprobs.all():
            log.warning("classifier.calibrate=true needs the server's logprobs, which it did not return: skipped.")
            return proba
        return calibrated(proba, bias, targets, [target for target, _ in rows])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most likely label of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _score(self, answers: list[Answer], content_free: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities per answer and whether each came from logprobs; answers that name no label are an error."""
        words = [self.words_[label] for label in self.classes_]
        proba, by_logprobs, bad = np.zeros((len(answers), len(words))), np.zeros(len(answers), dtype=bool), []
        for i, answer in enumerate(answers):
            scored = from_logprobs(answer.top, words) if answer.top else None
            if scored is not None:
                proba[i], by_logprobs[i] = scored, True
                continue
            label = parse_answer(answer.text, words)
            if label is None:
                bad.append(i)
            else:
                proba[i, label] = 1.0
        if bad:
            shown = "; ".join(f"row {i}: {answers[i].text.strip()[:40]!r}" for i in bad[:5])
            kind = "content-free rows (classifier.calibrate)" if content_free else "rows"
            raise EndpointError(
                f"classifier=llm_endpoint: {len(bad)} of {len(answers)} {kind} were "
                f"answered with no label word ({', '.join(words)}) and the server returned no logprobs to score "
                f"them ({shown}). Give more examples (raise classifier.shots), an instruction-tuned model "
                f"(classifier.model), a server that honours classifier.constrain, or one that returns logprobs."
            )
        return proba, by_logprobs

    def _count(self, progress: Any) -> None:
        """Add a labelling's requests, tokens and cost to `usage_` (totals since fit)."""
        price = (self.prices or {}).get(self.model) or {}
        cost = (progress.input_tokens * price.get("input", 0) + progress.output_tokens * price.get("output", 0)) / 1e6
        usage = getattr(self, "usage_", None) or {}
        added = {"requests": progress.sent, "cached_requests": progress.cached, "input_tokens": progress.input_tokens,
                 "output_tokens": progress.output_tokens, "cost_usd": cost}  # fmt: skip
        self.usage_ = {k: usage.get(k, 0) + v for k, v in added.items()}

    def _describe(self, err: Exception) -> EndpointError:
        """The SDK's error as one line naming the URL, the config key and the fix."""
        import openai

        url, tries = safe_url(self.base_url), f"{self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}"
        said = server_said(err)
        if isinstance(err, openai.APITimeoutError):
            return EndpointError(
                f"classifier.base_url {url} gave no answer within classifier.timeout={self.timeout}s (after {tries}):"
                " raise classifier.timeout or lower classifier.concurrency."
            )
        if isinstance(err, openai.APIConnectionError):
            cause = str(err.__cause__ or said).strip().splitlines()[0][:200] if (err.__cause__ or said) else ""
            return EndpointError(
                f"classifier.base_url {url} cannot be reached ({cause}; after {tries}): start the server, or set "
                f"classifier.base_url to where it listens (e.g. {DEFAULT_URL})."
            )
        code = getattr(err, "status_code", None)
        if code in (401, 403):
            fix = (f"check the key in ${self.api_key_env} (classifier.api_key_env)" if self.api_key_env else
                   "set classifier.api_key_env to the name of the environment variable holding the key")  # fmt: skip
            return EndpointError(f"{url} refused the request (HTTP {code}: {said}): {fix}.")
        if code == 404:
            return EndpointError(
                f"{url} answered 404 for classifier.model {self.model!r} ({said}): check the model name (the server "
                "lists them at <base_url>/models) and that classifier.base_url ends with its API path, e.g. /v1."
            )
        if code == 429:
            return EndpointError(
                f"{url} still limits the rate after {tries} (HTTP 429: {said}): lower classifier.concurrency or "
                "raise classifier.max_retries."
            )
        if code in (400, 422):
            return EndpointError(
                f"{url} refused the request (HTTP {code}: {said}). If it names a field: classifier.constrain=false "
                "drops guided_choice/structured_outputs/grammar (OpenAI refuses them), classifier.top_logprobs=0 "
                "drops logprobs (or lower it), classifier.api=completions|chat picks the other API."
            )
        return EndpointError(f"{url} answered HTTP {code} after {tries}: {said}")


def from_logprobs(top: list[tuple[str, float]], words: list[str]) -> np.ndarray | None:
    """Probabilities over `words` from the first answer token's top log-probabilities; None if none names a word.

    A token counts for a word it starts (or that it starts, as `favor.`), when it fits no other word. A word no
    top token names is at most as likely as the least likely one listed; it gets that, or an equal share of the
    mass outside the list if smaller.
    """
    wanted = [w.strip().lower() for w in words]
    mass = np.zeros(len(words))
    for token, logprob in top:
        t = token.strip().lower()
        fits = [k for k, w in enumerate(wanted) if t and (w.startswith(t) or t.startswith(w))]
        if len(fits) == 1:
            mass[fits[0]] += float(np.exp(logprob))
    if not mass.any():
        return None
    probs = np.exp([lp for _, lp in top])
    unseen = mass == 0
    if unseen.any():
        rest = max(0.0, 1.0 - float(probs.sum())) / int(unseen.sum())
        mass[unseen] = max(min(float(probs.min()), rest), 1e-12)
    return mass / mass.sum()


def parse_answer(text: str, words: list[str]) -> int | None:
    """The position of the one label word an answer gives (its first words, case and punctuation aside), else None."""
    answer, split = _words(text), [_words(w) for w in words]
    found = {k for k, w in enumerate(split) if w and answer[: len(w)] == w}
    return found.pop() if len(found) == 1 else None


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s-]", " ", text.lower()).split()
