"""Secrets kept out of MLflow and logs: credentials in params, tags, configs, overrides and log records masked."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

# Config keys whose values are credentials, matched on the last part of a flattened name.
_SECRET_WORDS = r"token|passw(?:or)?d|secret|credentials?|(?:api|access|private)?_?key"
_SECRET_KEY = re.compile(rf"(?:^|[._-])(?:{_SECRET_WORDS})$", re.I)
_ASSIGNMENT = re.compile(r"(?P<key>[^\s,=]+)=(?P<value>[^\s,]+)")
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|KEY|AUTH", re.I)
# Also in Hydra's escaped form of an override value (`http\://user\:password@host`), as sweeps write it.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*\\?://[^/:@\s]*:)[^@/\s]+@", re.I)
REDACTED = "***"


def redact_text(text: str) -> str:
    """`text` with URL passwords and the values of secret-looking environment variables masked."""
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    # Overrides in tags and run names: `+db.password=...`.
    text = _ASSIGNMENT.sub(lambda m: f"{m['key']}={REDACTED}" if _SECRET_KEY.search(m["key"]) else m[0], text)
    for name, value in os.environ.items():
        # Short values (e.g. "1", "true") are not credentials and would mask unrelated text.
        if len(value) >= 8 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_overrides(overrides: list[str] | Any) -> list[str]:
    """Hydra overrides with the values of secret-looking keys masked whole (a sweep's `key=a,b` included)."""
    out = []
    for override in map(str, overrides):
        key, sep, value = override.partition("=")
        out.append(f"{key}={REDACTED}" if sep and value and _SECRET_KEY.search(key) else redact_text(override))
    return out


def _redacting_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        shown = redact_text(message)
        if shown != message:
            record.msg, record.args = shown, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def redact_log_records() -> None:
    """From now on, every log record's message is redacted (Hydra logs each job's overrides, MLflow its URLs)."""
    make = logging.getLogRecordFactory()
    if not getattr(make, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(make))


def quiet_credentials(uri: str) -> None:
    """Stop MLflow printing run links when `uri` carries a password: it prints the URI in clear on stdout."""
    if _URL_PASSWORD.search(uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def redact(values: dict[str, Any]) -> dict[str, str]:
    """Params or tags as strings, with secret-looking keys' values and embedded credentials masked."""
    return {
        key: REDACTED if _SECRET_KEY.search(key) and value not in (None, "") else redact_text(str(value))
        for key, value in values.items()
    }


def redact_config(config: Any, key: str = "") -> Any:
    """A resolved config (nested dicts and lists) with secrets masked as in `redact`, e.g. for `config.yaml`."""
    if isinstance(config, dict):
        return {k: redact_config(v, str(k)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact_config(v) for v in config]
    if _SECRET_KEY.search(key) and config not in (None, ""):
        return REDACTED
    return redact_text(config) if isinstance(config, str) else config
