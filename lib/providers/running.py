"""What this process started and must stop: local endpoints (servers in this process) register here,
so the executor can stop everything on every path (success, failure, Ctrl-C) without knowing
which provider started what."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Closable(Protocol):
    def close(self) -> Any: ...


_RUNNING: dict[str, Closable] = {}
_LOCK = threading.Lock()


def add(resource_id: str, resource: Closable) -> None:
    with _LOCK:
        _RUNNING[resource_id] = resource


def get(resource_id: str) -> Closable | None:
    with _LOCK:
        return _RUNNING.get(resource_id)


def stop(resource_id: str) -> bool:
    """Stop one; False if it was not running (already stopped, or never ours)."""
    with _LOCK:
        resource = _RUNNING.pop(resource_id, None)
    if resource is None:
        return False
    resource.close()
    return True


def running() -> list[str]:
    with _LOCK:
        return list(_RUNNING)


def stop_all() -> list[str]:
    """Stop everything still running; the ids stopped."""
    with _LOCK:
        items = list(_RUNNING.items())
        _RUNNING.clear()
    for _, resource in items:
        resource.close()
    return [key for key, _ in items]
