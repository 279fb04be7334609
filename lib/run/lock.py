"""One run at a time in an output folder: ``<root>/.lock`` names the run that holds it.

    with run_lock(root):
        ...  # a second run_lock(root), in any process, raises LockHeld naming this one

The lock is a file created with O_CREAT|O_EXCL (so exactly one process creates it) holding
``{"pid", "host", "started", "argv"}``. It is removed when the block ends, however it ends
(an exception, Ctrl-C). A lock whose process is gone (same host, pid no longer alive, or alive
but started after the lock was taken: a reused pid) is stale and taken over with a note on
stderr. A lock from another host cannot be checked and is never taken over: the message says
which file to delete. An S3 root has no lock (S3 has no create-if-absent); that is a no-op.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib import storage
from lib.errors import UserError
from lib.run.layout import RunLayout

_TIME = "%Y-%m-%dT%H:%M:%SZ"
_HELD: set[str] = set()  # lock files this process holds now (a pid match alone cannot tell)
_UNREADABLE_GRACE_S = 5.0  # a lock still empty after this long lost its writer between create and write


class LockHeld(UserError):
    """Another run holds the output folder (exit code 2: the user asked for two runs in one place)."""

    def __init__(self, root: str, lock: str, holder: dict[str, Any] | None) -> None:
        self.root, self.lock, self.holder = root, lock, holder or {}
        super().__init__(
            f"{root} is in use by another run ({describe(self.holder)}); nothing was changed. "
            f"Wait for that run to end, or use another --output-dir; if that run is gone, delete {lock}.")


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host h, started 2024-01-01T00:00:00Z, command: python ...``"""
    if not holder:
        return "holder unknown: the lock file is being written or is damaged"
    argv = holder.get("argv")
    command = " ".join(str(a) for a in argv) if isinstance(argv, list) else "?"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}, command: {command}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    except OSError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) holds nothing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _process_start(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), from /proc; None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after "pid (comm)"
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _stale(holder: dict[str, Any], held_here: bool = False) -> str | None:
    """Why ``holder`` no longer holds the lock, or None when it may still be running."""
    if holder.get("host") != socket.gethostname():
        return None  # another machine's process: cannot be checked from here
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return "it names no process"
    if pid == os.getpid() and not held_here:
        return f"pid {pid} is this process, which did not take it (a pid reused after a restart)"
    if not _pid_alive(pid):
        return f"pid {pid} is no longer running"
    started = _parse_time(holder.get("started"))
    began = _process_start(pid)
    if started is not None and began is not None and began > started + 2:
        return f"pid {pid} is a newer process that reused the number"
    return None


def _parse_time(text: Any) -> float | None:
    try:
        import calendar

        return float(calendar.timegm(time.strptime(str(text), _TIME)))
    except (ValueError, OverflowError):
        return None


def _read(path: Path) -> tuple[bytes, dict[str, Any] | None]:
    """The lock's bytes and its holder; (b"", None) when it vanished, holder None when unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", None
    try:
        holder = json.loads(data)
        return data, holder if isinstance(holder, dict) else None
    except ValueError:
        return data, None


def _take_over(path: Path, seen: bytes) -> bool:
    """Remove the stale lock whose bytes are ``seen``, unless another process replaced it first."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False  # another process removed it first; try again
    try:
        if aside.read_bytes() == seen:
            return True
        try:  # we moved a fresh lock taken in the meantime: put it back
            os.link(aside, path)
        except FileExistsError:
            pass
        return False
    finally:
        aside.unlink(missing_ok=True)


def _create(path: Path, content: bytes) -> bool:
    """Create the lock holding ``content``; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage.refused(str(path), exc) from exc
    try:
        view = memoryview(content)
        while view:  # one small write, in practice: a reader sees it whole or empty
            view = view[os.write(fd, view):]
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise storage.refused(str(path), exc) from exc
    os.close(fd)
    return True


def acquire(root: str) -> bytes | None:
    """Take the lock of ``root``; the bytes written (to release it by), None for an S3 root.

    Raises `LockHeld` when a live run holds it, `StorageError` when the folder cannot be written.
    """
    if storage.is_remote(root):
        return None
    path = Path(RunLayout(root).lock)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime(_TIME, time.gmtime()),
              "argv": list(sys.argv)}
    mine = (json.dumps(holder) + "\n").encode("utf-8")
    if not path.parent.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage.refused(str(path), exc) from exc
    unreadable_since: float | None = None
    for _ in range(100):
        if _create(path, mine):
            _HELD.add(str(path))
            return mine
        seen, other = _read(path)
        if not seen and other is None and not path.exists():
            continue  # released between our create and our read
        if other is None:  # being written (create and write are two calls) or damaged
            unreadable_since = unreadable_since or time.monotonic()
            age = time.time() - _mtime(path)
            if time.monotonic() - unreadable_since < 1.0 and age < _UNREADABLE_GRACE_S:
                time.sleep(0.05)
                continue
            if age < _UNREADABLE_GRACE_S:
                raise LockHeld(root, str(path), None)
            why = "it is empty or damaged"
        else:
            why = _stale(other, str(path) in _HELD)
            if why is None:
                raise LockHeld(root, str(path), other)
        if _take_over(path, seen):
            print(f"note: taking over the lock {path} ({describe(other or {})}): {why}", file=sys.stderr)
    raise LockHeld(root, str(path), _read(path)[1])


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def release(root: str, mine: bytes | None) -> None:
    """Remove the lock of ``root`` if it is still the one ``acquire`` wrote."""
    if mine is None:
        return
    path = Path(RunLayout(root).lock)
    _HELD.discard(str(path))
    try:
        if path.read_bytes() == mine:
            path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            print(f"warning: could not remove the lock {path}: {exc.strerror or exc}", file=sys.stderr)


@contextmanager
def run_lock(root: str) -> Iterator[None]:
    """Hold ``<root>/.lock`` for the block; refuse (`LockHeld`, exit 2) when another live run holds it."""
    mine = acquire(root)
    try:
        yield
    finally:
        release(root, mine)
