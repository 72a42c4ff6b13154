"""Signals during a run: SIGTERM and Ctrl-C end it as an exception, so the MLflow run is closed, not left RUNNING."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a scheduler's time limit) arrived during a run."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into an exception so the run is closed; left alone where someone else (e.g. submitit) handles it."""
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupt_on_signals(on_signal: Callable[[str], None]) -> None:
    """From now on, SIGINT and SIGTERM call `on_signal(name)`, then raise KeyboardInterrupt (`Terminated` for SIGTERM).

    Each is left alone where someone else handles it (e.g. submitit), or ignores it (a shell's background job).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        on_signal(signal.Signals(signum).name)
        raise (Terminated if signum == signal.SIGTERM else KeyboardInterrupt)(f"signal {signum}")

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


@contextmanager
def exit_at_once_after_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise within (`interrupt_on_signals`); once that is handled, the process exits at once."""
    # By then the MLflow runs ended KILLED; the interpreter's teardown of torch and MLflow took 3-6 s on 2 busy cores.
    received: list[str] = []
    interrupt_on_signals(received.append)
    try:
        yield
    finally:
        if received:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signal.Signals[received[0]].value)
