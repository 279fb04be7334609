"""boto3 clients and the tags every created resource carries.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), so the same code runs against moto's
server or LocalStack.
"""

from __future__ import annotations

import os
from typing import Any

TAG_PREFIX = "llm-eval-pipelines"
PIPELINE_TAG = f"{TAG_PREFIX}:pipeline"
EXECUTION_TAG = f"{TAG_PREFIX}:execution"
MODEL_TAG = f"{TAG_PREFIX}:model"


def client(service: str, region: str | None = None, timeout: float | None = None) -> Any:
    """A boto3 client. With ``timeout`` (model invocation): that read timeout and no retries of
    botocore's own, since the evaluation engine retries with its own backoff and counts attempts."""
    import boto3

    config = None
    if timeout is not None:
        from botocore.config import Config

        config = Config(read_timeout=timeout, connect_timeout=min(timeout, 30), retries={"max_attempts": 1})
    return boto3.client(service, region_name=region or os.environ.get("AWS_REGION")
                        or os.environ.get("AWS_DEFAULT_REGION") or None, config=config)


def aws_name(model: str) -> str:
    """A model's name as AWS names (steps, endpoints, tags) carry it: the sample allows underscores in
    model names, AWS's step and endpoint names do not, so each becomes a hyphen (`lib.config.load` refuses
    two names that map onto one)."""
    return model.replace("_", "-")


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
