"""Provider `huggingface`: a Hub model on the SageMaker Hugging Face LLM (TGI) container."""

from __future__ import annotations

import os
from typing import Any

from lib.aws.endpoints import create_endpoint, create_model
from lib.providers.sagemaker_base import SageMakerEndpointProvider, role_arn, tags_for


class HuggingFaceProvider(SageMakerEndpointProvider):
    name = "huggingface"
    batch_transform = True

    def create(self, model: dict[str, Any], finetuned: dict[str, Any] | None, context: dict[str, Any],
               created: list[dict[str, str]]) -> dict[str, Any]:
        deployment = model["deployment"]
        image = deployment.get("image_uri")
        if not image:
            from sagemaker.huggingface import get_huggingface_llm_image_uri

            image = get_huggingface_llm_image_uri("huggingface", region=model.get("region")
                                                  or os.environ.get("AWS_DEFAULT_REGION"))
        env = {"HF_MODEL_ID": model["model_id"], "SM_NUM_GPUS": "1", **(deployment.get("env") or {})}
        if model["invoke"].get("invocation") == "batch_transform":  # the model only: a job will run it
            return create_model(name=model["endpoint_name"], image_uri=image, role_arn=role_arn(),
                                tags=tags_for(model, context), created=created, environment=env,
                                model_data_url=(finetuned or {}).get("model_data_url"), region=model.get("region"))
        return create_endpoint(
            name=model["endpoint_name"], image_uri=image, role_arn=role_arn(),
            instance_type=deployment["instance_type"], instance_count=deployment["num_instances"],
            tags=tags_for(model, context), created=created, environment=env,
            model_data_url=(finetuned or {}).get("model_data_url"), region=model.get("region"))
