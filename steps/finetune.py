"""Step `finetune-<model>`: train the model on its training data through its provider."""

from __future__ import annotations

from typing import Any

from lib.aws import aws_name
from lib.providers import get_provider
from lib.run.layout import RunLayout
from steps._common import context, guarded


def finetune(model: dict[str, Any], run_root: str, cache_root: str | None = None,
             execution_id: str | None = None) -> dict[str, Any]:
    step = f"finetune-{aws_name(model['name'])}"  # the plan's step name (`lib.plan.build.step_name`)
    ctx = context(step, RunLayout.resolve(run_root, execution_id), cache_root, execution_id=execution_id)
    return guarded(step, lambda: get_provider(model["provider"]).finetune(model, ctx))
