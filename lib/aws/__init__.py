"""boto3 clients and the tags every created resource carries.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), so the same code runs against moto's
server or LocalStack.
"""

from __future__ import annotations

import os
import threading
from typing import Any

TAG_PREFIX = "llm-eval-pipelines"
PIPELINE_TAG = f"{TAG_PREFIX}:pipeline"
EXECUTION_TAG = f"{TAG_PREFIX}:execution"
MODEL_TAG = f"{TAG_PREFIX}:model"


_CLIENTS: dict[tuple, tuple[Any, Any]] = {}  # (service, region, timeout, pid, AWS_* env) -> (session, client)
_CLIENTS_LOCK = threading.Lock()


def client(service: str, region: str | None = None, timeout: float | None = None) -> Any:
    """A boto3 client, one per process for each service, region and timeout (clients are thread-safe;
    making one costs milliseconds and a few MB). With ``timeout`` (model invocation): that read timeout
    and no retries of botocore's own, since the evaluation engine retries with its own backoff and
    counts attempts.

    A new client is made when what boto3 reads changes: an ``AWS_*`` variable (endpoint URL, keys,
    profile, region), the default boto3 session (moto replaces it), or the process (after a fork)."""
    import boto3

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    key = (service, region, timeout, os.getpid(),
           tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    with _CLIENTS_LOCK:  # boto3's default session is not safe to set up from two threads at once
        cached = _CLIENTS.get(key)
        if cached is not None and cached[0] is boto3.DEFAULT_SESSION:
            return cached[1]
        config = None
        if timeout is not None:
            from botocore.config import Config

            config = Config(read_timeout=timeout, connect_timeout=min(timeout, 30), retries={"max_attempts": 1})
        made = boto3.client(service, region_name=region, config=config)
        if len(_CLIENTS) >= 64:  # environments come and go (tests): keep the table small
            _CLIENTS.clear()
        _CLIENTS[key] = (boto3.DEFAULT_SESSION, made)
        return made


def aws_name(model: str) -> str:
    """A model's name as AWS names (steps, endpoints, tags) carry it: the sample allows underscores in
    model names, AWS's step and endpoint names do not, so each becomes a hyphen (`lib.config.load` refuses
    two names that map onto one)."""
    return model.replace("_", "-")


def derived_endpoint_name(model: str) -> str:
    """The endpoint a model gets when its config names none: ``llm-eval-<model>``, within AWS's 63."""
    return f"llm-eval-{aws_name(model)}"[:63].rstrip("-")


def resource_tags(pipeline: str, execution_id: str | None = None, model: str | None = None,
                  extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    tags = {PIPELINE_TAG: pipeline, **({EXECUTION_TAG: execution_id} if execution_id else {}),
            **({MODEL_TAG: aws_name(model)} if model else {}), **(extra or {})}
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""


THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable",
                    "ServiceUnavailableException", "InternalFailure", "InternalServerException",
                    "ModelNotReadyException", "ProvisionedThroughputExceededException"}
