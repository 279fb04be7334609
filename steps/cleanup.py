"""Step `cleanup-<model>`: remove what this execution's deploy created, never what it found."""

from __future__ import annotations

from typing import Any

from lib import progress
from lib.providers import get_provider
from steps._common import guarded


def cleanup(model: dict[str, Any], deployment: dict[str, Any], registered: dict[str, Any] | None = None) -> dict:
    step = f"cleanup-{model['name']}"
    if not deployment or not deployment.get("created"):
        return {"status": "succeeded", "deleted": [], "error": None}
    result = guarded(step, lambda: get_provider(model["provider"]).cleanup(model, deployment))
    if result.get("deleted"):
        progress.say(step, "removed " + ", ".join(str(d) for d in result["deleted"]))
    return result
