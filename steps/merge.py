"""Step `merge-<model>`: a sharded model's answers (`dataset.shards`) put back in dataset order and scored
as one evaluation, so the summary holds what an unsharded run of the same answers would (the same code
scores both: `steps.evaluate.scored_result`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from lib import storage
from lib.aws import aws_name
from lib.engine.invoke import InvocationStats, Spend, count_row
from lib.run.layout import RunLayout
from lib.run.records import FAILED, INTERRUPTED, ModelResult
from steps._common import failed, guarded
from steps.evaluate import record_count, scored_result, stopped_result


def interrupted(model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
                algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None = None,
                execution_id: str | None = None, budget_share_usd: float | None = None,
                *shards: dict[str, Any]) -> dict[str, Any] | None:
    """A sharded model the run's interrupt stopped (`merge`'s arguments): how far its shards got."""
    layout = RunLayout.resolve(run_root, execution_id)
    files = [layout.shard_outputs(model["name"], i) for i in range(len(shards))]
    return stopped_result(model, files, layout, record_count(dataset) if dataset.get("uri") else None)


def merge(model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
          algorithms: list[dict[str, Any]], run_root: str, cache_root: str | None = None,
          execution_id: str | None = None, budget_share_usd: float | None = None,
          *shards: dict[str, Any]) -> dict[str, Any]:
    step = f"merge-{aws_name(model['name'])}"
    layout = RunLayout.resolve(run_root, execution_id)
    if failed(deployment):
        return ModelResult.failure(model["name"], f"not evaluated: {deployment['error']}").to_dict()
    if failed(dataset):
        return ModelResult.failure(model["name"], f"not evaluated: preprocess failed ({dataset['error']})").to_dict()
    broken = [s for s in shards if failed(s) or s.get("status") == "interrupted"]
    if broken:  # its answers are kept: a rerun into the same folder asks only what is missing
        why = "; ".join(f"shard {s.get('shard', {}).get('index', '?')}: {s.get('error')}" for s in broken)
        interrupted = all(s.get("status") == "interrupted" for s in broken)
        return ModelResult(model["name"], status=INTERRUPTED if interrupted else FAILED,
                           error=f"{len(broken)} of {len(shards)} shards did not finish ({why})").to_dict()
    outcome = guarded(step, lambda: _merge(step, model, deployment, dataset, algorithms, layout, cache_root,
                                           budget_share_usd, list(shards)).to_dict())
    return ModelResult.from_dict({"model": model["name"], **outcome}).to_dict()


def _merge(step: str, model: dict[str, Any], deployment: dict[str, Any], dataset: dict[str, Any],
           algorithms: list[dict[str, Any]], layout: RunLayout, cache_root: str | None,
           budget_share_usd: float | None, shards: list[dict[str, Any]]) -> ModelResult:
    parts = [layout.shard_outputs(model["name"], s["shard"]["index"])
             for s in sorted(shards, key=lambda s: s["shard"]["index"])]
    stats = InvocationStats()

    def counted() -> Iterator[dict[str, Any]]:  # counted as they are written: the merged file is read once
        for row in itertools.chain.from_iterable(map(storage.iter_jsonl, parts)):
            stats.records += 1
            count_row(stats, row)
            yield row

    storage.write_jsonl(layout.outputs(model["name"]), counted())
    stats.invocations = sum(s["invocations"] for s in shards)
    stats.attempts = sum(s["attempts"] for s in shards)
    stats.resumed = sum(s["resumed"] for s in shards)
    stats.wall_s = max((s["wall_s"] for s in shards), default=0.0)  # the shards asked side by side
    spend = Spend(model.get("price"), budget_share_usd) if budget_share_usd else None  # a judge's share
    return scored_result(step, model, deployment, dataset, algorithms, layout, cache_root, stats, spend)
