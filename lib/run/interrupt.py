"""Stopping a run on SIGINT or SIGTERM: one flag every worker checks before a new model call, and the
exception that carries the signal to the executor (which then deletes what the run created).

A second signal while the run is winding down exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()


class Interrupted(BaseException):  # noqa: N818 — like KeyboardInterrupt, not an error a step may catch
    """The run was asked to stop. ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, exit_code: int = 130) -> None:
        super().__init__(f"interrupted ({'SIGTERM' if exit_code == 143 else 'SIGINT'})")
        self.exit_code = exit_code


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def reset() -> None:
    _requested.clear()


def check() -> None:
    """Raise Interrupted if the run is stopping (call before starting new work)."""
    if _requested.is_set():
        raise Interrupted()


@contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` in the main thread; a second one exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: object) -> None:
        code = 143 if signum == signal.SIGTERM else 130
        request()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, second)
        print(f"\n{signal.Signals(signum).name}: stopping; deleting what this run created "
              "(send it again to exit at once)", file=sys.stderr, flush=True)
        raise Interrupted(code)

    def second(signum: int, frame: object) -> None:
        print("exiting at once: resources this run created may be left; "
              "`cleanup --execution-id` finds them by tag", file=sys.stderr, flush=True)
        os._exit(143 if signum == signal.SIGTERM else 130)

    previous = {sig: signal.signal(sig, first) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
