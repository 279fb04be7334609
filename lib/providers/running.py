"""What this process started and must stop: local endpoints (servers in this process) register here,
so the executor can stop everything on every path (success, failure, Ctrl-C) without knowing
which provider started what; and what a deploy still in progress has created so far in AWS."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Closable(Protocol):
    def close(self) -> Any: ...


_RUNNING: dict[str, Closable] = {}
_IN_PROGRESS: dict[str, dict[str, Any]] = {}  # step -> what it has created so far
_LOCK = threading.Lock()


def in_progress(step: str, partial: dict[str, Any]) -> None:
    """Note what a step that creates resources has made so far (a dict it keeps appending to), so an
    interrupted run can delete it before the step returns."""
    with _LOCK:
        _IN_PROGRESS[step] = partial


def finished(step: str) -> None:
    with _LOCK:
        _IN_PROGRESS.pop(step, None)


def partial_result(step: str) -> dict[str, Any] | None:
    with _LOCK:
        return _IN_PROGRESS.get(step)


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
