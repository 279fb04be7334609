"""How long a plan is expected to take, given how many steps may run at once: each step's expected
duration from the cost assumptions (`lib.decide.cost`), then the steps placed as an executor places them
— in plan order, each as soon as its dependencies have finished and a slot is free. A plain function of
the plan: no AWS call, nothing run.
"""

from __future__ import annotations

import heapq
from typing import Any

from lib.plan.model import Plan, Step


def step_seconds(step: Step, records: int, assumptions: dict[str, Any], on_sagemaker: bool) -> float:
    """What ``step`` is expected to take: a model's answers at ``seconds_per_record`` over its concurrency
    (a shard its share), an endpoint's start-up, a fine-tune's epochs; on SageMaker every step is also a
    job that starts (``step_minutes``)."""
    a = assumptions
    seconds = a["step_minutes"] * 60 if on_sagemaker else 0.0
    model = step.args.get("model") or {}
    if step.kind == "evaluate":
        n = records
        shard = step.args.get("shard")
        if shard:
            n = records * (shard["index"] + 1) // shard["count"] - records * shard["index"] // shard["count"]
        concurrency = (model.get("invoke") or {}).get("max_concurrency") or 4
        asking = n * a["seconds_per_record"] / concurrency
        if (model.get("invoke") or {}).get("invocation") == "batch_transform":  # the job brings up instances
            asking = asking / max(1, (model.get("deployment") or {}).get("num_instances", 1)) \
                + a["endpoint_startup_minutes"] * 60
        seconds += asking
    elif step.kind == "deploy" and model.get("creates_endpoint") and (model.get("price") or {}).get("usd_per_hour") \
            and (model.get("invoke") or {}).get("invocation") != "batch_transform":
        seconds += a["endpoint_startup_minutes"] * 60  # an endpoint billed by the hour: one on AWS
    elif step.kind == "finetune" and on_sagemaker:
        seconds += a["training_hours_per_epoch"] * 3600 * (model.get("finetune") or {}).get(
            "parameters", {}).get("epoch", 1)
    return seconds


def expected_wall_seconds(plan: Plan, durations: dict[str, float], parallel: int) -> dict[str, float]:
    """{"wall_s", "critical_path_s", "busy_s"}: the makespan with at most ``parallel`` steps at once (each
    free slot takes the first ready step in plan order, as the local executor does), the longest chain of
    dependencies (the wall time with unlimited parallelism), and the sum of all steps."""
    finish: dict[str, float] = {}
    longest: dict[str, float] = {}
    for step in plan.steps:  # plan order is a topological order (`lib.plan.model.Plan`)
        longest[step.name] = max((longest[d] for d in step.depends_on), default=0.0) + durations.get(step.name, 0.0)
    pending = list(plan.steps)
    running: list[tuple[float, str]] = []  # (finish time, step)
    now = 0.0
    while pending or running:
        for step in list(pending):
            if len(running) >= max(1, parallel):
                break
            if all(d in finish and finish[d] <= now for d in step.depends_on):
                pending.remove(step)
                heapq.heappush(running, (now + durations.get(step.name, 0.0), step.name))
        if not running:  # nothing can start: a dependency outside the plan (refused when it is built)
            break
        now, name = heapq.heappop(running)
        finish[name] = now
    return {"wall_s": round(max(finish.values(), default=0.0), 1),
            "critical_path_s": round(max(longest.values(), default=0.0), 1),
            "busy_s": round(sum(durations.values()), 1)}
