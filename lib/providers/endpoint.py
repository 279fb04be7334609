"""Provider `endpoint`: an endpoint that already exists. Nothing is deployed, nothing deleted."""

from __future__ import annotations

from typing import Any

from lib.aws.endpoints import describe_resources, endpoint_exists
from lib.providers.base import Provider
from lib.providers.sagemaker_base import SageMakerEndpointInvoker


class EndpointProvider(Provider):
    name = "endpoint"
    deploys = False  # the endpoint is the user's: nothing is created, nothing deleted
    log_probabilities = "details"  # when its container is TGI's (see Provider.log_probabilities)
    required_keys = {"endpoint_name": "the existing endpoint to evaluate"}

    def deploy(self, model: dict[str, Any], finetuned: dict[str, Any] | None,
               context: dict[str, Any]) -> dict[str, Any]:
        if not endpoint_exists(model["endpoint_name"], model.get("region")):
            raise ValueError(f"the endpoint '{model['endpoint_name']}' does not exist")
        return {**describe_resources(model["endpoint_name"], model.get("region")), "created": [], "reused": True}

    def invoker(self, model: dict[str, Any], deployment: dict[str, Any]) -> SageMakerEndpointInvoker:
        return SageMakerEndpointInvoker(deployment["endpoint_name"], model["invoke"], model.get("region"))

    # identity: the base one (endpoint name, region, image and model data as described, model id)
