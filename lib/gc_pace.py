"""Fewer cyclic-garbage collections while a burst of short-lived objects is made.

At its default pace (every 700 new objects) the collector runs hundreds of times during a 10,000-record
run or a 600-step SageMaker definition, and each of its full passes walks every object the imports
made (sagemaker, botocore, fmeval): a quarter of a definition's build time, 0.2-0.3 s of a run.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collecting_every(new_objects: int = 20_000) -> Iterator[None]:
    """Start a collection every ``new_objects`` allocations inside the block; the caller's pace after it."""
    before = gc.get_threshold()
    gc.set_threshold(max(new_objects, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
