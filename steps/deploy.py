"""Step `deploy-<model>`: make the model callable (an endpoint, a local server, or nothing to do)."""

from __future__ import annotations

from typing import Any

from lib.aws import aws_name
from lib.providers import get_provider, running
from lib.run.layout import RunLayout
from steps._common import context, failed, guarded


def deploy(model: dict[str, Any], finetune_result: dict[str, Any] | None, run_root: str,
           execution_id: str, cache_root: str | None = None) -> dict[str, Any]:
    step = f"deploy-{aws_name(model['name'])}"  # the plan's step name (`lib.plan.build.step_name`)
    if failed(finetune_result):
        return {"status": "failed", "error": f"not deployed: fine-tuning failed ({finetune_result['error']})",
                "created": []}
    ctx = context(step, RunLayout.resolve(run_root, execution_id), cache_root, execution_id=execution_id,
                  created=[])
    provider = get_provider(model["provider"])
    # an interrupted run deletes what this deploy has made so far, before the deploy returns
    running.in_progress(step, {"status": "interrupted", "error": "interrupted while deploying",
                               "created": ctx["created"]})
    try:
        result = guarded(step, lambda: provider.deploy(model, finetune_result, ctx))
    finally:
        running.finished(step)
    # a failed deploy may have created part of what it meant to; cleanup reads this list
    result.setdefault("created", ctx.get("created", []))
    if finetune_result:  # what deploying this model again needs (a gate evaluating it as the champion)
        result["finetuned"] = {k: v for k, v in finetune_result.items() if k not in ("status", "error", "trace")}
    return result
