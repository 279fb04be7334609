"""A registry on disk beside a pipeline's local runs: one JSON line per registered version.

The index changes in one step, or not at all: the whole new file (every version so far plus the
new line) is written beside it and renamed over it (`lib.storage.write_bytes`), so a full or
read-only disk leaves it exactly as it was and a reader never sees half a line. `withdraw_locally`
takes the line out again when the run could not record that it registered (a truncate: it needs
no free space). Processes registering into one index at once take turns (an flock on its
folder: no file is created, no free space is needed, and a process that dies lets go).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from lib import storage

try:
    import fcntl
except ImportError:  # no flock on this platform: taking turns is then up to the user
    fcntl = None
from lib.run.records import SUCCEEDED, Registration


@contextmanager
def _exclusive(index: Path) -> Iterator[None]:
    """Hold the index to ourselves between reading it and rewriting it."""
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(index.parent, os.O_RDONLY)
    except OSError as exc:
        raise storage.refused(str(index), exc) from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the flock


def _complete_lines(index: Path) -> bytes:
    """The index's bytes up to its last whole line (a torn tail, from an older version, is dropped)."""
    if not index.exists():
        return b""
    data = index.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def _next_version(lines: bytes) -> int:
    return sum(1 for line in lines.splitlines() if line.strip()) + 1


def _line(registration: Registration) -> bytes:
    return (json.dumps(registration.to_dict()) + "\n").encode("utf-8")


def prepare_locally(registration: Registration, index_uri: str) -> Registration:
    """Fill in where ``registration`` will go; nothing is written. No version yet: a record with a
    version reads as registered (the report and the console show it), and it is not, yet."""
    registration.registry = str(index_uri)
    return registration


def register_locally(registration: Registration, index_uri: str) -> Registration:
    """Add ``registration`` as the next version; `StorageError` (and the index unchanged) if the disk refuses."""
    index = Path(index_uri)
    with _exclusive(index):
        before = _complete_lines(index)
        version = _next_version(before)
        line = _line(replace(registration, version=version, registry=str(index), status=SUCCEEDED, error=None))
        storage.write_bytes(str(index), before + line, "application/jsonlines")
    registration.version, registration.registry, registration.status = version, str(index), SUCCEEDED
    return registration


def withdraw_locally(registration: Registration, index_uri: str) -> bool:
    """Take ``registration``'s line off the end of the index again; False if the last line is not it."""
    index = Path(index_uri)
    try:
        with _exclusive(index):
            return _withdraw(registration, index)
    except (OSError, storage.StorageError):
        return False


def _withdraw(registration: Registration, index: Path) -> bool:
    try:
        data = _complete_lines(index)
        if not data:
            return False
        start = data.rfind(b"\n", 0, len(data) - 1) + 1
        last = json.loads(data[start:])
        ours = {k: getattr(registration, k) for k in ("version", "execution_id", "model", "created_at")}
        if {k: last.get(k) for k in ours} != ours:
            return False
        os.truncate(index, start)
    except (OSError, ValueError):
        return False
    return True
