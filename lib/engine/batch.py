"""The engine's other way to ask: every record not yet answered, through one batch transform job
(`lib.aws.transform`), with the same rows, answer cache and resume as `invoke_records`, so scoring
cannot tell the two apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lib import storage
from lib.engine.cache import OutputCache, cache_key
from lib.engine.invoke import InvocationStats, answered_rows, count_rows, make_prompt


def transform_records(records: list[dict[str, Any]], *, model: dict[str, Any], deployment: dict[str, Any],
                      identity: str, outputs_uri: str, cache: OutputCache | None, execution_id: str | None,
                      tags: list[dict[str, str]], progress: Callable[[str], None] = lambda m: None,
                      poll_seconds: float | None = None) -> tuple[list[dict[str, Any]], InvocationStats]:
    """One output row per record, in record order, like `lib.engine.invoke.invoke_records`. Rows already
    answered in ``outputs_uri`` and answers in the cache are not sent to the job."""
    from lib.aws.transform import POLL_SECONDS, run_transform

    invoke = model["invoke"]
    stats = InvocationStats(records=len(records))
    prompts = {r["id"]: make_prompt(invoke["prompt_template"], str(r["model_input"])) for r in records}
    done = answered_rows(outputs_uri, prompts)
    stats.resumed = sum(1 for r in records if r["id"] in done)

    def row_for(record: dict[str, Any], **answer: Any) -> dict[str, Any]:
        return {"id": record["id"], "model_input": record["model_input"], "prompt": prompts[record["id"]],
                "target_output": record.get("target_output"), "latency_s": None, "attempts": 0,
                "prompt_tokens": None, "generated_tokens": None, "cached": False, **answer}

    todo = []
    for record in records:
        if record["id"] in done:
            continue
        hit = cache.get(cache_key(identity, invoke, prompts[record["id"]])) if cache else None
        if hit is not None:
            done[record["id"]] = row_for(record, output=hit["output"], error=None, cached=True,
                                         prompt_tokens=hit.get("prompt_tokens"),
                                         generated_tokens=hit.get("generated_tokens"))
        else:
            todo.append(record)
    if todo:
        folder = storage.join(storage.parent(outputs_uri), "transform")
        if not storage.is_remote(folder):  # a run on this machine: the job reads and writes S3 all the same
            if not invoke.get("transform_s3_uri"):
                raise ValueError("a batch transform job reads and writes S3: set sagemaker.bucket in "
                                 "pipeline_config.yaml for a run on this machine")
            folder = storage.join(invoke["transform_s3_uri"], str(execution_id), model["name"])
        answers, stats.wall_s = run_transform(
            model=model, deployment=deployment, records=todo, prompts=prompts, folder=folder,
            execution_id=execution_id, tags=tags, progress=progress,
            poll_seconds=POLL_SECONDS if poll_seconds is None else poll_seconds)
        for record in todo:
            answer = answers.get(record["id"])
            if answer is None or isinstance(answer, str):
                done[record["id"]] = row_for(record, output=None, attempts=1,
                                             error=answer or "the batch transform job wrote no answer for it")
                continue
            done[record["id"]] = row_for(record, output=answer.text, error=None, attempts=1,
                                         prompt_tokens=answer.prompt_tokens, generated_tokens=answer.generated_tokens)
            if cache is not None:
                cache.put(cache_key(identity, invoke, prompts[record["id"]]),
                          {"output": answer.text, "latency_s": None, "prompt_tokens": answer.prompt_tokens,
                           "generated_tokens": answer.generated_tokens})
        stats.invocations = stats.attempts = len(todo)
    rows = [done[r["id"]] for r in records]
    storage.write_jsonl(outputs_uri, rows)
    return rows, count_rows(stats, rows)
