"""Fewer cyclic-garbage collections while a burst of short-lived objects is made.

At its default pace (every 700 new objects) the collector runs hundreds of times during a 10,000-record
run or a 600-step SageMaker definition, and each of its full passes walks every object the imports
made (sagemaker, botocore, fmeval): a quarter of a definition's build time, 0.2-0.3 s of a run.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# the pace is the process's, and blocks may overlap in different threads (two definitions rendered at
# once): the caller's pace comes back when the last block ends, whatever order they end in
_lock = threading.Lock()
_open = 0
_before: tuple[int, ...] = ()


@contextlib.contextmanager
def collecting_every(new_objects: int = 20_000) -> Iterator[None]:
    """Start a collection every ``new_objects`` allocations (at least) inside the block."""
    global _open, _before
    with _lock:
        if _open == 0:
            _before = gc.get_threshold()
        _open += 1
        now = gc.get_threshold()
        gc.set_threshold(max(new_objects, now[0]), *now[1:])
    try:
        yield
    finally:
        with _lock:
            _open -= 1
            if _open == 0:
                gc.set_threshold(*_before)
