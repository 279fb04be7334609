"""Ask every record through one SageMaker batch transform job instead of an endpoint: no endpoint stays
up (or is billed) while the records are asked.

The records go to S3 as JSON Lines, each ``{"id", "body"}`` with the body in the model's request format;
the job reads ``$.body`` (``InputFilter``) and joins each answer to its input line (``JoinSource:
Input``), so every output line carries its record's id and ``SageMakerOutput``: answers are joined back
to records by id, never by position. The job is tagged like every resource of the run and stopped when
the run is interrupted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from lib import aws, storage
from lib.engine.invokers import build_body, read_answer
from lib.run import interrupt

POLL_SECONDS = 30.0
DONE = ("Completed", "Failed", "Stopped")


def job_name(model_name: str, execution_id: str | None) -> str:
    """Unique per model, execution and attempt (SageMaker never reuses a job name; a resumed run starts
    another job); at most 63 characters as SageMaker allows."""
    import hashlib

    base = f"llm-eval-{model_name}"[:44].rstrip("-")
    seed = f"{model_name}|{execution_id}|{time.time_ns()}"
    return f"{base}-{hashlib.sha256(seed.encode()).hexdigest()[:12]}"


def input_lines(records: list[dict[str, Any]], prompts: dict[str, str], invoke: dict[str, Any]) -> str:
    return "".join(json.dumps({"id": r["id"], "body": build_body(invoke, prompts[r["id"]])}) + "\n" for r in records)


def run_transform(*, model: dict[str, Any], deployment: dict[str, Any], records: list[dict[str, Any]],
                  prompts: dict[str, str], folder: str, execution_id: str | None, tags: list[dict[str, str]],
                  progress: Callable[[str], None], poll_seconds: float = POLL_SECONDS) -> tuple[dict[str, Any], float]:
    """Run the job over ``records``; ({record id: Answer or error text}, seconds the job took).
    ``folder`` (S3) receives the input and the job's output."""
    invoke, dep = model["invoke"], model["deployment"]
    name = job_name(model["name"], execution_id)
    input_uri = storage.join(folder, "input", "records.jsonl")
    output_uri = storage.join(folder, "output")
    storage.write_text(input_uri, input_lines(records, prompts, invoke), "application/jsonlines")
    sm = aws.client("sagemaker", model.get("region"))
    started = time.monotonic()
    sm.create_transform_job(
        TransformJobName=name, ModelName=deployment["model_name"], BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=invoke.get("max_concurrency") or 4,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                        "ContentType": "application/jsonlines", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": output_uri, "Accept": "application/json", "AssembleWith": "Line"},
        TransformResources={"InstanceType": dep["instance_type"], "InstanceCount": dep["num_instances"]},
        DataProcessing={"InputFilter": "$.body", "JoinSource": "Input", "OutputFilter": "$"},
        Tags=tags)
    progress(f"batch transform job {name}: {len(records)} records on {dep['num_instances']} x {dep['instance_type']}")
    status = _wait(sm, name, poll_seconds, progress)
    seconds = time.monotonic() - started
    if status["TransformJobStatus"] != "Completed":
        raise RuntimeError(f"batch transform job {name} {status['TransformJobStatus'].lower()}: "
                           f"{status.get('FailureReason') or 'no reason given'}")
    return read_output(storage.join(output_uri, "records.jsonl.out"), invoke, {r["id"] for r in records}), seconds


def _wait(sm: Any, name: str, poll_seconds: float, progress: Callable[[str], None]) -> dict[str, Any]:
    last = None
    while True:
        if interrupt.requested():  # the run is stopping: so does the job (it bills while it runs)
            sm.stop_transform_job(TransformJobName=name)
            progress(f"batch transform job {name}: stopped (the run was interrupted)")
            interrupt.check()
        status = sm.describe_transform_job(TransformJobName=name)
        if status["TransformJobStatus"] != last:
            last = status["TransformJobStatus"]
            progress(f"batch transform job {name}: {last}")
        if last in DONE:
            return status
        time.sleep(poll_seconds)


def read_output(uri: str, invoke: dict[str, Any], ids: set[str]) -> dict[str, Any]:
    """{record id: Answer, or the error text for an answer that cannot be read}; ids without a line are
    left out (the caller counts them as failed)."""
    answers: dict[str, Any] = {}
    for line in storage.read_text(uri).splitlines():
        if not line.strip():
            continue
        joined = json.loads(line)
        rid = joined.get("id")
        if rid not in ids:
            continue
        try:
            answers[rid] = read_answer(invoke, joined["SageMakerOutput"])
        except Exception as exc:  # one unreadable answer fails its record, not the run
            answers[rid] = f"unreadable answer: {type(exc).__name__}: {exc}"
    return answers
