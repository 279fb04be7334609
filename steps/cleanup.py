"""Step `cleanup-<model>`: remove what this execution's deploy created (and an endpoint it found that
the config or an earlier run of this pipeline hands over: see `SageMakerEndpointProvider._reuse`).

It waits for its own model's evaluation only, so nothing else in the run can keep the endpoint up."""

from __future__ import annotations

from typing import Any

from lib import progress
from lib.aws import aws_name
from lib.providers import get_provider
from steps._common import guarded


def cleanup(model: dict[str, Any], deployment: dict[str, Any], evaluation: dict[str, Any] | None = None) -> dict:
    step = f"cleanup-{aws_name(model['name'])}"  # the plan's step name (`lib.plan.build.step_name`)
    if not deployment or not (deployment.get("created") or deployment.get("adopted")):
        return {"status": "succeeded", "deleted": [], "error": None}
    result = guarded(step, lambda: get_provider(model["provider"]).cleanup(model, deployment))
    if result.get("deleted"):
        progress.say(step, "removed " + ", ".join(str(d) for d in result["deleted"]))
    return result
