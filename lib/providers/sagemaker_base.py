"""What every SageMaker-hosted provider shares: the execution role, tags, reuse of an existing
endpoint, invocation through `invoke_endpoint`, and own-only cleanup."""

from __future__ import annotations

import json
import os
from typing import Any

from lib import aws
from lib.aws.endpoints import delete_created, describe_resources, endpoint_exists, endpoint_tags
from lib.engine.invokers import Answer, PermanentError, TransientError, build_body, read_answer
from lib.providers.base import Provider
from lib.redact import redact


def role_arn() -> str:
    """The role endpoints and jobs run as: set by the SageMaker executor for every step."""
    role = os.environ.get("LLM_EVAL_ROLE_ARN")
    if not role:
        raise ValueError("no execution role: set sagemaker.role_arn in pipeline_config.yaml, or RoleArn in the "
                         "SageMaker defaults file (config.yaml beside the config, or ~/.config/sagemaker/config.yaml)")
    return role


def tags_for(model: dict[str, Any], context: dict[str, Any]) -> list[dict[str, str]]:
    return aws.resource_tags(model["pipeline"], context.get("execution_id"), model["name"])


class SageMakerEndpointProvider(Provider):
    """Shared by providers that deploy to a SageMaker endpoint: reuse, invoke, own-only cleanup."""

    default_max_concurrency = 4
    sagemaker_endpoint = True
    log_probabilities = "details"  # TGI containers (JumpStart's and Hugging Face's LLM images) return them
    preload_modules = ("sagemaker", "sagemaker.serializers", "sagemaker.deserializers")

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        name = model["endpoint_name"]
        if model["invoke"].get("invocation") != "batch_transform" and endpoint_exists(name, model.get("region")):
            return self._reuse(model, context)
        created = context.setdefault("created", [])
        info = self.create(model, finetuned, context, created)
        return {**info, "created": created, "reused": False}

    @classmethod
    def price(cls, model: dict[str, Any], prices: dict[str, Any]) -> dict[str, float] | None:
        hourly = prices["instance_usd_per_hour"].get(model["deployment"]["instance_type"])
        return None if hourly is None else {"usd_per_hour": hourly * model["deployment"]["num_instances"]}

    def _reuse(self, model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """An endpoint that exists already is used as it is. It is deleted at the end (``adopted``)
        when the config says ``cleanup_endpoint: true`` (as the AWS sample does) or when an earlier run
        of this pipeline left it (its tag says so); otherwise it is someone else's and stays."""
        name, region = model["endpoint_name"], model.get("region")
        info = describe_resources(name, region)
        left_by_us = endpoint_tags(name, region).get(aws.PIPELINE_TAG) == model["pipeline"]
        adopted: list[dict[str, str]] = []
        if model.get("cleanup_endpoint") is True or left_by_us:
            adopted = [{"type": "endpoint", "id": name},
                       {"type": "endpoint-config", "id": info["endpoint_config_name"]},
                       *({"type": "model", "id": m} for m in info["model_names"])]
            why = ("cleanup_endpoint: true" if model.get("cleanup_endpoint") is True
                   else "an earlier run of this pipeline left it")
            context["progress"](f"endpoint {name} already exists: reusing it; it is deleted at the end ({why})")
        else:
            context["progress"](f"endpoint {name} already exists: reusing it (it is not ours: it will not be deleted)")
        return {**info, "created": [], "adopted": adopted, "reused": True}

    def create(self, model: dict[str, Any], finetuned: dict[str, Any] | None, context: dict[str, Any],
               created: list[dict[str, str]]) -> dict[str, Any]:
        raise NotImplementedError

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> SageMakerEndpointInvoker:
        return SageMakerEndpointInvoker(deployment["endpoint_name"], model["invoke"], model.get("region"))

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        owned = deployment.get("created", []) + deployment.get("adopted", [])
        return {"deleted": delete_created(owned, model.get("region"))}


class SageMakerEndpointInvoker:
    """invoke_endpoint with the model's content template and JMESPath output. Picklable: the client is
    made on first use, per process."""

    def __init__(self, endpoint_name: str, invoke: dict[str, Any], region: str | None = None,
                 log_probabilities: bool = False) -> None:
        self.endpoint_name, self.invoke, self.region = endpoint_name, invoke, region
        self.log_probabilities = log_probabilities  # `lib.engine.invokers.with_log_probabilities`
        self._client = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def __call__(self, prompt: str) -> Answer:
        if self._client is None:
            self._client = aws.client("sagemaker-runtime", self.region, self.invoke.get("timeout_seconds", 120))
        kwargs: dict[str, Any] = {"EndpointName": self.endpoint_name, "ContentType": "application/json",
                                  "Accept": "application/json",
                                  "Body": json.dumps(build_body(self.invoke, prompt, self.log_probabilities))}
        if self.invoke.get("custom_attributes"):
            kwargs["CustomAttributes"] = self.invoke["custom_attributes"]
        try:
            response = self._client.invoke_endpoint(**kwargs)
        except Exception as exc:
            code = aws.error_code(exc)
            status = getattr(exc, "response", {}).get("OriginalStatusCode") or 0
            if code in aws.THROTTLING_CODES or status >= 500 or status == 429:
                raise TransientError(redact(f"{code or type(exc).__name__}: {exc}")) from None
            if code or hasattr(exc, "response"):
                raise PermanentError(redact(f"{code}: {exc}")) from None
            raise TransientError(redact(f"{type(exc).__name__}: {exc}")) from None  # connection trouble
        return read_answer(self.invoke, json.loads(response["Body"].read()), self.log_probabilities)
