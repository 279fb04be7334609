"""Provider `huggingface`: a Hub model on the SageMaker Hugging Face LLM (TGI) container."""

from __future__ import annotations

import os
from typing import Any

from lib import aws
from lib.providers.base import Provider
from lib.providers.sagemaker_endpoints import (
    SageMakerEndpointInvoker,
    create_endpoint,
    delete_created,
    describe_resources,
    endpoint_exists,
)


def role_arn() -> str:
    """The role endpoints and jobs run as: set by the SageMaker executor for every step."""
    role = os.environ.get("LLM_EVAL_ROLE_ARN")
    if not role:
        raise ValueError("no execution role: set sagemaker.role_arn in pipeline_config.yaml")
    return role


def tags_for(model: dict[str, Any], context: dict[str, Any]) -> list[dict[str, str]]:
    return aws.resource_tags(model["pipeline"], context.get("execution_id"), model["name"])


class SageMakerEndpointProvider(Provider):
    """Shared by providers that deploy to a SageMaker endpoint: reuse, invoke, own-only cleanup."""

    default_max_concurrency = 4

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        name = model["endpoint_name"]
        if endpoint_exists(name, model.get("region")):
            context["progress"](f"endpoint {name} already exists: reusing it (it will not be deleted)")
            return {**describe_resources(name, model.get("region")), "created": [], "reused": True}
        created = context.setdefault("created", [])
        info = self.create(model, finetuned, context, created)
        return {**info, "created": created, "reused": False}

    def create(self, model: dict[str, Any], finetuned: dict[str, Any] | None, context: dict[str, Any],
               created: list[dict[str, str]]) -> dict[str, Any]:
        raise NotImplementedError

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> SageMakerEndpointInvoker:
        return SageMakerEndpointInvoker(deployment["endpoint_name"], model["invoke"], model.get("region"))

    def cleanup(self, model: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        return {"deleted": delete_created(deployment.get("created", []), model.get("region"))}


class HuggingFaceProvider(SageMakerEndpointProvider):
    name = "huggingface"

    def create(self, model: dict[str, Any], finetuned: dict[str, Any] | None, context: dict[str, Any],
               created: list[dict[str, str]]) -> dict[str, Any]:
        deployment = model["deployment"]
        image = deployment.get("image_uri")
        if not image:
            from sagemaker.huggingface import get_huggingface_llm_image_uri

            image = get_huggingface_llm_image_uri("huggingface", region=model.get("region")
                                                  or os.environ.get("AWS_DEFAULT_REGION"))
        env = {"HF_MODEL_ID": model["model_id"], "SM_NUM_GPUS": "1", **(deployment.get("env") or {})}
        return create_endpoint(
            name=model["endpoint_name"], image_uri=image, role_arn=role_arn(),
            instance_type=deployment["instance_type"], instance_count=deployment["num_instances"],
            tags=tags_for(model, context), created=created, environment=env,
            model_data_url=(finetuned or {}).get("model_data_url"), region=model.get("region"),
            wait=os.environ.get("LLM_EVAL_WAIT_FOR_ENDPOINTS", "1") != "0")
