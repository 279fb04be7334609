"""The engine's other way to ask: every record not yet answered, through one batch transform job
(`lib.aws.transform`), with the same rows, answer cache and resume as `ask_records`, so scoring cannot
tell the two apart.

Streamed like `ask_records`: the records are read twice (once to write the job's input, once to put
the answers back in record order), the job's answers are joined back by id through a temporary
on-disk index, and only a resumed run holds the earlier run's answers.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lib import storage
from lib.engine.cache import OutputCache, key_maker
from lib.engine.invoke import InvocationStats, answered_rows, count_row, kept_row, make_prompt


def transform_records(source: Callable[[], Iterable[dict[str, Any]]], total: int, *, model: dict[str, Any],
                      deployment: dict[str, Any], identity: str, outputs_uri: str, cache: OutputCache | None,
                      execution_id: str | None, tags: list[dict[str, str]],
                      progress: Callable[[str], None] = lambda m: None,
                      poll_seconds: float | None = None) -> InvocationStats:
    """Write one output row per record of ``source()`` (``total`` of them) to ``outputs_uri``, in record
    order, like `lib.engine.invoke.ask_records`. Rows already answered in ``outputs_uri`` and answers in
    the cache are not sent to the job."""
    from lib.aws import transform

    invoke = model["invoke"]
    stats = InvocationStats(records=total)
    done = answered_rows(outputs_uri)
    cache_key = key_maker(identity, invoke)

    def kept(record: dict[str, Any], prompt: str) -> dict[str, Any] | None:
        """The row of a record answered before (this run's earlier attempt, or the cache), if any."""
        earlier = kept_row(done, record["id"], prompt)
        if earlier is not None:
            return earlier
        hit = cache.get(cache_key(prompt)) if cache else None
        if hit is None:
            return None
        return _row(record, prompt, output=hit["output"], error=None, cached=True,
                    prompt_tokens=hit.get("prompt_tokens"), generated_tokens=hit.get("generated_tokens"))

    with tempfile.TemporaryDirectory(prefix="llm-eval-transform-") as scratch:
        index = sqlite3.connect(Path(scratch) / "answers.db")  # the job's answers by record id, on disk
        index.execute("CREATE TABLE asked (id TEXT PRIMARY KEY, answer TEXT)")
        todo = 0
        job_input: storage.JsonlWriter | None = None  # opened for the first record the job must ask
        try:
            for record in source():
                prompt = make_prompt(invoke["prompt_template"], str(record["model_input"]))
                if kept(record, prompt) is None:
                    if job_input is None:
                        folder = _folder(outputs_uri, invoke, execution_id, model["name"])
                        job_input = storage.JsonlWriter(transform.input_uri(folder))
                    job_input.write(transform.input_line(record["id"], prompt, invoke))
                    index.execute("INSERT OR IGNORE INTO asked VALUES (?, NULL)", (record["id"],))
                    todo += 1
        except BaseException:
            if job_input is not None:
                job_input.abort()
            raise
        if job_input is not None:
            job_input.close()
            output, stats.wall_s = transform.run_transform(
                model=model, deployment=deployment, records=todo, folder=folder, execution_id=execution_id,
                tags=tags, progress=progress,
                poll_seconds=transform.POLL_SECONDS if poll_seconds is None else poll_seconds)
            for rid, answer in transform.read_output(output, invoke):
                value = answer if isinstance(answer, str) else {
                    "text": answer.text, "prompt_tokens": answer.prompt_tokens,
                    "generated_tokens": answer.generated_tokens}
                index.execute("UPDATE asked SET answer = ? WHERE id = ?", (json.dumps(value), rid))
            stats.invocations = stats.attempts = todo
        with storage.JsonlWriter(outputs_uri) as out:
            for record in source():
                prompt = make_prompt(invoke["prompt_template"], str(record["model_input"]))
                asked = index.execute("SELECT answer FROM asked WHERE id = ?", (record["id"],)).fetchone()
                row = _asked_row(record, prompt, asked[0]) if asked else kept(record, prompt)
                if row is None:  # answered when the input was written, gone since (a cache removed meanwhile)
                    row = _row(record, prompt, output=None, error="not asked: its cached answer was removed")
                if asked and row["error"] is None and cache is not None:
                    cache.put(cache_key(prompt),
                              {"output": row["output"], "latency_s": None, "prompt_tokens": row["prompt_tokens"],
                               "generated_tokens": row["generated_tokens"]})
                if row is done.get(record["id"]):
                    stats.resumed += 1
                out.write(row)
                count_row(stats, row)
        index.close()
    return stats


def _folder(outputs_uri: str, invoke: dict[str, Any], execution_id: str | None, name: str) -> str:
    """Where the job's input and output go (S3): beside the outputs, or for a run on this machine under
    the configured bucket."""
    folder = storage.join(storage.parent(outputs_uri), "transform")
    if storage.is_remote(folder):
        return folder
    if not invoke.get("transform_s3_uri"):
        raise ValueError("a batch transform job reads and writes S3: set sagemaker.bucket in "
                         "pipeline_config.yaml for a run on this machine")
    return storage.join(invoke["transform_s3_uri"], str(execution_id), name)


def _row(record: dict[str, Any], prompt: str, **answer: Any) -> dict[str, Any]:
    return {"id": record["id"], "model_input": record["model_input"], "prompt": prompt,
            "target_output": record.get("target_output"), "latency_s": None, "attempts": 0,
            "prompt_tokens": None, "generated_tokens": None, "cached": False, **answer}


def _asked_row(record: dict[str, Any], prompt: str, stored: str | None) -> dict[str, Any]:
    """A record the job was asked: its answer, or why it has none."""
    answer = json.loads(stored) if stored is not None else "the batch transform job wrote no answer for it"
    if isinstance(answer, str):
        return _row(record, prompt, output=None, attempts=1, error=answer)
    return _row(record, prompt, output=answer["text"], error=None, attempts=1,
                prompt_tokens=answer["prompt_tokens"], generated_tokens=answer["generated_tokens"])
