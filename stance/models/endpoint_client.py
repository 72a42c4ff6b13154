"""Requests to an OpenAI-compatible server for classifier=llm_endpoint: sent in a small thread pool, answers cached.

The client is the `openai` SDK, not hand-written HTTP: every server this targets (vLLM, llama.cpp, Ollama, TGI,
transformers serve, OpenAI) speaks its wire format, and it brings timeouts, retries with exponential backoff and
jitter (honouring Retry-After on 429 and 5xx), and typed errors for each failure. Each answer is stored in a SQLite
file under the stance cache dir, keyed by the server, model and the whole request body, so a rerun sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stance.features.cache import cache_dir
from stance.features.pretrained import ModelLoadError

log = logging.getLogger(__name__)
DB_NAME = "llm_endpoint.sqlite"
# Servers (by URL) that refused the optional fields by name: this process sends them no more (said once).
_REFUSED: set[str] = set()
_SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL) WITHOUT ROWID"


class EndpointError(ModelLoadError):
    """The server cannot be reached or used, or its answers name no label; the message names the key to change."""


def safe_url(url: str) -> str:
    """`url` without any user:password part, as it may be shown and logged."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if (
        parts.username or parts.password
    ) else url  # fmt: skip


@dataclass
class Answer:
    """What a request's answer holds for scoring: its text, first answer token's top log-probabilities, token counts."""

    text: str
    top: list[tuple[str, float]] | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False

    def to_json(self) -> str:
        """The answer as stored in the cache."""
        return json.dumps([self.text, self.top, self.input_tokens, self.output_tokens])

    @classmethod
    def from_json(cls, text: str) -> Answer:
        """An answer read back from the cache."""
        answer, top, tokens_in, tokens_out = json.loads(text)
        return cls(answer, [tuple(t) for t in top] if top is not None else None, tokens_in, tokens_out, cached=True)


class ResponseCache:
    """Answers by request key in one SQLite file (WAL: parallel jobs read while one writes); off if unwritable."""

    def __init__(self, directory: str | Path | None = None, enabled: bool = True):
        self.path = cache_dir(directory) / DB_NAME
        self._conn: sqlite3.Connection | None = None
        if not enabled:  # classifier.cache=false: nothing read, nothing written
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=60)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as err:  # a run without a cache still labels its rows, only slower next time
            log.warning("classifier=llm_endpoint: no response cache at %s (%s); every request is sent.", self.path, err)
            self._conn = None

    def get(self, keys: list[str]) -> dict[str, Answer]:
        """The cached answers among `keys`."""
        if self._conn is None:
            return {}
        found: dict[str, Answer] = {}
        for i in range(0, len(keys), 900):  # under SQLite's limit of host parameters
            chunk = keys[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for key, answer in self._conn.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk):
                found[key] = Answer.from_json(answer)
        return found

    def put(self, key: str, answer: Answer) -> None:
        """Store one answer at once, so an interrupted run keeps what it paid for."""
        if self._conn is not None:
            with self._conn:
                self._conn.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, answer.to_json()))

    def close(self) -> None:
        """Close the database."""
        if self._conn is not None:
            self._conn.close()


def request_key(base_url: str, api: str, body: dict[str, Any]) -> str:
    """The cache key of a request: the server, the API and the whole body (model, prompt, every parameter)."""
    payload = json.dumps([safe_url(base_url).rstrip("/"), api, body], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def make_client(base_url: str, api_key: str | None, timeout: float, max_retries: int) -> Any:
    """The SDK client; a server without keys still gets a placeholder, as the SDK insists on one."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key or "no-key", timeout=timeout, max_retries=max_retries)


def server_said(err: Exception) -> str:
    """What the server said about an error: its message, else FastAPI's `detail`, else the SDK's text; one line."""
    body = getattr(err, "body", None)
    said = None
    if isinstance(body, dict):
        said = body.get("message") or body.get("detail")
    text = str(said if said is not None else (getattr(err, "message", "") or err)).strip()
    return (text.splitlines() or [""])[0][:300]


def send(client: Any, api: str, body: dict[str, Any]) -> Answer:
    """One request: the answer's text, its first answer token's top log-probabilities (if returned), token counts."""
    known = {"model", "prompt", "messages", "max_tokens", "temperature", "logprobs", "top_logprobs"}
    args = {k: v for k, v in body.items() if k in known}
    extra = {k: v for k, v in body.items() if k not in known}
    if api == "chat":
        done = client.chat.completions.create(**args, extra_body=extra or None)
        text = done.choices[0].message.content or ""
    else:
        done = client.completions.create(**args, extra_body=extra or None)
        text = done.choices[0].text or ""
    # The first token that is not blank is the answer's first: many models start with a space or a newline.
    top = next((alts for token, alts in answer_positions(done.choices[0]) if token.strip() and alts), None)
    usage = done.usage
    return Answer(text, top, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)


def answer_positions(choice: Any) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each answer token with its top alternatives' log-probabilities, from a chat or a completions choice."""
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None:
        return []
    steps = getattr(logprobs, "content", None) or []  # chat; llama.cpp's server answers completions this way too
    if steps:
        get = (lambda o, k: o[k]) if isinstance(steps[0], dict) else getattr  # an SDK model, or extra fields as dicts
        return [(get(s, "token"), [(get(t, "token"), get(t, "logprob")) for t in get(s, "top_logprobs") or []])
                for s in steps]  # fmt: skip
    tokens, tops = getattr(logprobs, "tokens", None) or [], getattr(logprobs, "top_logprobs", None) or []
    return [(t, list((top or {}).items())) for t, top in zip(tokens, tops, strict=False)]


@dataclass
class Progress:
    """Counts of one labelling: requests sent and answered from the cache, tokens, and how long the requests took."""

    sent: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def answer_all(
    client: Any,
    api: str,
    bodies: list[dict[str, Any]],
    keys: list[str],
    cache: ResponseCache,
    concurrency: int,
    describe: Callable[[Exception], EndpointError],
    show_progress: bool,
    optional: dict[str, Any] | None = None,
) -> tuple[list[Answer], Progress]:
    """Each body's answer, from the cache or the server: the first request alone, then `concurrency` at a time.

    The first request goes alone so that a server that is down is one error after its few retries, not one per
    thread; any error stops the requests not yet sent, and is raised as `describe` words it. `optional` fields
    (answer constraints) join each body unless the server refuses them by name on the first request: then they are
    left out, and said once (servers differ: some ignore unknown fields, some refuse them).
    """
    from tqdm.auto import tqdm

    found = cache.get(list(dict.fromkeys(keys)))
    todo = list(dict.fromkeys(k for k in keys if k not in found))  # a request repeated in the rows is sent once
    body_of = dict(zip(keys, bodies, strict=True))
    progress = Progress(cached=sum(1 for k in keys if k in found))
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="llm requests", unit="req", disable=not show_progress or not todo)

    server = str(client.base_url)
    extra = {} if server in _REFUSED else dict(optional or {})

    def one(key: str) -> tuple[str, Answer]:
        return key, send(client, api, body_of[key] | extra)

    def first(key: str) -> tuple[str, Answer]:
        nonlocal extra
        try:
            return one(key)
        except Exception as err:
            said = server_said(err)
            if getattr(err, "status_code", None) not in (400, 422) or not any(f in said for f in extra):
                raise
            log.warning("The server refused the optional fields %s (%s): they are left out.", sorted(extra), said)
            extra = {}
            _REFUSED.add(server)
            return one(key)

    def record(key: str, answer: Answer) -> None:
        found[key] = answer
        cache.put(key, answer)
        progress.sent += 1
        progress.input_tokens += answer.input_tokens
        progress.output_tokens += answer.output_tokens
        bar.update(1)
        bar.set_postfix(statements_per_s=f"{progress.sent / max(time.perf_counter() - start, 1e-9):.2f}")

    try:
        if todo:
            record(*_described(lambda: first(todo[0]), describe))
        with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
            futures = {pool.submit(one, key) for key in todo[1:]}
            for done in _as_completed_or_first_error(futures):
                record(*_described(done.result, describe))
    finally:
        bar.close()
    progress.seconds = time.perf_counter() - start
    return [found[k] for k in keys], progress


def _as_completed_or_first_error(futures: set[Any]) -> Iterator[Any]:
    """The futures as they finish; at the first that failed, the others not yet started are cancelled."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        yield from (f for f in finished if f.exception() is None)
        if failed:
            for future in pending:
                future.cancel()
            yield failed[0]


def _described(call: Callable[[], Any], describe: Callable[[Exception], EndpointError]) -> Any:
    try:
        return call()
    except Exception as err:
        from openai import OpenAIError

        if isinstance(err, OpenAIError):
            raise describe(err) from None  # the SDK's traceback says nothing the message does not
        raise
