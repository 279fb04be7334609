"""Progress lines on the terminal: time, step, message, credentials redacted (`lib.redact`).
Thread-safe; steps run in parallel."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from lib.redact import redact

_lock = threading.Lock()
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def say(step: str, message: str) -> None:
    if _quiet:
        return
    with _lock:
        print(redact(f"{time.strftime('%H:%M:%S')} {step:<28} {message}"), file=sys.stderr, flush=True)


def reporter(step: str) -> Callable[[str], None]:
    """A one-argument callable that reports under ``step``."""
    return lambda message: say(step, message)
