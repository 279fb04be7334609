"""What every step shares: the context a provider sees, and turning a provider error into data."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from lib import progress
from lib.redact import redact
from lib.run.layout import RunLayout


def context(step: str, layout: RunLayout, cache_root: str | None = None, **extra: Any) -> dict[str, Any]:
    """What a provider's deploy and fine-tune see (the docstring of `lib/providers/base.py` lists the keys)."""
    return {"layout": layout, "run_root": layout.root, "cache_root": cache_root,
            "progress": progress.reporter(step), **extra}


def guarded(step: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn``; a failure becomes ``{"status": "failed", "error": ...}`` so later steps still run.

    A SageMaker step that raises never reaches its cleanup steps; that is how endpoints leak.
    """
    try:
        result = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        error = redact(f"{type(exc).__name__}: {exc}")  # stored in the run's JSON and shown in the report
        progress.say(step, f"FAILED: {error}")
        return {"status": "failed", "error": error, "trace": redact(traceback.format_exc(limit=6))}
    return {"status": "succeeded", "error": None, **result}


def failed(result: dict[str, Any] | None) -> bool:
    return bool(result) and result.get("status") == "failed"
