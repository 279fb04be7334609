"""The sweep pipeline's one step (not part of the plan): delete the endpoints, endpoint configs and
models tagged with ``pipeline`` whose execution is no longer running. Started by the EventBridge rule
`upsert` adds with ``sagemaker.sweep_on_failure: true``."""

from __future__ import annotations

from typing import Any

from lib import progress
from steps._common import guarded


def sweep(pipeline: str, region: str | None = None) -> dict[str, Any]:
    from lib.aws.cleanup_tagged import delete_finished

    result = guarded("sweep", lambda: {"deleted": delete_finished(pipeline, region)})
    progress.say("sweep", f"deleted {len(result.get('deleted') or [])}: " + ", ".join(result.get("deleted") or []))
    return result
