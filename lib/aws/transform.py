"""Ask every record through one SageMaker batch transform job instead of an endpoint: no endpoint stays
up (or is billed) while the records are asked.

The records go to S3 as JSON Lines, each ``{"id", "body"}`` with the body in the model's request format;
the job reads ``$.body`` (``InputFilter``) and joins each answer to its input line (``JoinSource:
Input``), so every output line carries its record's id and ``SageMakerOutput``: answers are joined back
to records by id, never by position. The job is tagged like every resource of the run and stopped when
the run is interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


def input_line(record_id: str, prompt: str, invoke: dict[str, Any]) -> dict[str, Any]:
    """One line of the job's input: the record's id, and its request as the model takes it."""
    return {"id": record_id, "body": build_body(invoke, prompt)}


def input_uri(folder: str) -> str:
    return storage.join(folder, "input", "records.jsonl")


def run_transform(*, model: dict[str, Any], deployment: dict[str, Any], records: int, folder: str,
                  execution_id: str | None, tags: list[dict[str, str]], progress: Callable[[str], None],
                  poll_seconds: float = POLL_SECONDS) -> tuple[str, float]:
    """Run the job over the ``records`` input lines already in ``folder`` (S3, `input_uri`); (the URI of
    its output, seconds the job took). The output goes to ``folder`` too."""
    invoke, dep = model["invoke"], model["deployment"]
    name = job_name(model["name"], execution_id)
    output_uri = storage.join(folder, "output")
    sm = aws.client("sagemaker", model.get("region"))
    started = time.monotonic()
    sm.create_transform_job(
        TransformJobName=name, ModelName=deployment["model_name"], BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=invoke.get("max_concurrency") or 4,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri(folder)}},
                        "ContentType": "application/jsonlines", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": output_uri, "Accept": "application/json", "AssembleWith": "Line"},
        TransformResources={"InstanceType": dep["instance_type"], "InstanceCount": dep["num_instances"]},
        DataProcessing={"InputFilter": "$.body", "JoinSource": "Input", "OutputFilter": "$"},
        Tags=tags)
    progress(f"batch transform job {name}: {records} records on {dep['num_instances']} x {dep['instance_type']}")
    status = _wait(sm, name, poll_seconds, progress)
    seconds = time.monotonic() - started
    if status["TransformJobStatus"] != "Completed":
        raise RuntimeError(f"batch transform job {name} {status['TransformJobStatus'].lower()}: "
                           f"{status.get('FailureReason') or 'no reason given'}")
    return storage.join(output_uri, "records.jsonl.out"), seconds


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


def read_output(uri: str, invoke: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(record id, Answer or the error text for an answer that cannot be read) for each line of the
    job's output, one at a time."""
    for joined in storage.iter_jsonl(uri):
        rid = joined.get("id")
        if not isinstance(rid, str):
            continue
        try:
            yield rid, read_answer(invoke, joined["SageMakerOutput"])
        except Exception as exc:  # one unreadable answer fails its record, not the run
            yield rid, f"unreadable answer: {type(exc).__name__}: {exc}"
