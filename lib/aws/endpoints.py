"""SageMaker real-time endpoints: find, create (tagged, recording each resource as it is made) and
delete only what a run created."""

from __future__ import annotations

import os
from typing import Any

from lib import aws


def endpoint_exists(name: str, region: str | None = None) -> bool:
    """Describe the endpoint by name (no paging through list_endpoints can miss it)."""
    sm = aws.client("sagemaker", region)
    try:
        sm.describe_endpoint(EndpointName=name)
        return True
    except sm.exceptions.ClientError as exc:
        if aws.error_code(exc) in ("ValidationException", "ResourceNotFound"):
            return False
        raise


def endpoint_tags(name: str, region: str | None = None) -> dict[str, str]:
    sm = aws.client("sagemaker", region)
    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn).get("Tags", [])}


def describe_resources(name: str, region: str | None = None) -> dict[str, Any]:
    """Endpoint -> its config -> its models, with the first model's container (image, artifact,
    environment) and instance type: what a model package needs to deploy the same model again."""
    sm = aws.client("sagemaker", region)
    endpoint = sm.describe_endpoint(EndpointName=name)
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = [v["ModelName"] for v in config.get("ProductionVariants", []) if v.get("ModelName")]
    info: dict[str, Any] = {"endpoint_name": name, "endpoint_config_name": endpoint["EndpointConfigName"],
                            "model_names": models}
    variants = config.get("ProductionVariants", [])
    if variants and variants[0].get("InstanceType"):
        info["instance_type"] = variants[0]["InstanceType"]
    if models:
        info.update({k: v for k, v in describe_model(models[0], region).items() if k != "model_name"})
    return info


def describe_model(name: str, region: str | None = None) -> dict[str, Any]:
    """A SageMaker model's container (image, artifact, environment), in `create_model`'s shape."""
    described = aws.client("sagemaker", region).describe_model(ModelName=name)
    container = described.get("PrimaryContainer") or (described.get("Containers") or [{}])[0]
    info = {"model_name": name, "image_uri": container.get("Image"), "model_data_url": container.get("ModelDataUrl"),
            "environment": container.get("Environment") or {}}
    if container.get("ModelDataSource"):  # JumpStart's way: an S3 object or prefix, its compression, its EULA
        info["model_data_source"] = container["ModelDataSource"]
    return info


def wait_in_service(name: str, region: str | None = None) -> None:
    """Until the endpoint serves: looked at right away, then every 30 s, for up to an hour (the SDK's own
    wait sleeps 30 s before it first looks). Not at all with LLM_EVAL_WAIT_FOR_ENDPOINTS=0 (tests whose
    stand-in never brings an endpoint up)."""
    if os.environ.get("LLM_EVAL_WAIT_FOR_ENDPOINTS", "1") == "0":
        return
    from botocore.exceptions import WaiterError

    try:
        aws.client("sagemaker", region).get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 30, "MaxAttempts": 120})
    except WaiterError as exc:  # its text names the status only: SageMaker's reason says why
        last = exc.last_response or {}
        why = last.get("FailureReason") or (last.get("Error") or {}).get("Message") or str(exc)
        raise RuntimeError(f"endpoint {name} did not come into service "
                           f"({last.get('EndpointStatus') or 'no status'}): {why}") from None


def create_model(*, name: str, image_uri: str, role_arn: str, tags: list[dict[str, str]],
                 created: list[dict[str, str]], model_data_url: str | None = None,
                 environment: dict[str, str] | None = None, region: str | None = None) -> dict[str, Any]:
    """A SageMaker model (what an endpoint or a batch transform job runs), appended to ``created``."""
    container: dict[str, Any] = {"Image": image_uri, "Environment": environment or {}}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    aws.client("sagemaker", region).create_model(ModelName=name, PrimaryContainer=container,
                                                 ExecutionRoleArn=role_arn, Tags=tags)
    created.append({"type": "model", "id": name})
    return {"model_name": name, "image_uri": image_uri, "model_data_url": model_data_url,
            "environment": environment or {}}


def create_endpoint(*, name: str, image_uri: str, role_arn: str, instance_type: str, instance_count: int,
                    tags: list[dict[str, str]], created: list[dict[str, str]], model_data_url: str | None = None,
                    environment: dict[str, str] | None = None, region: str | None = None) -> dict[str, Any]:
    """Model, endpoint config, endpoint; each is appended to ``created`` the moment it exists, so a
    failure half-way still leaves cleanup the full list."""
    sm = aws.client("sagemaker", region)
    create_model(name=name, image_uri=image_uri, role_arn=role_arn, tags=tags, created=created,
                 model_data_url=model_data_url, environment=environment, region=region)
    sm.create_endpoint_config(EndpointConfigName=name, Tags=tags, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": instance_type,
        "InitialInstanceCount": instance_count}])
    created.append({"type": "endpoint-config", "id": name})
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
    created.append({"type": "endpoint", "id": name})
    wait_in_service(name, region)
    return {"endpoint_name": name, "image_uri": image_uri, "model_data_url": model_data_url,
            "environment": environment or {}, "instance_type": instance_type}


def delete_created(created: list[dict[str, str]], region: str | None = None) -> list[str]:
    """Delete what the run recorded, endpoint first; a resource already gone is not an error."""
    sm = aws.client("sagemaker", region)
    order = {"endpoint": 0, "endpoint-config": 1, "model": 2}
    calls = {"endpoint": ("delete_endpoint", "EndpointName"),
             "endpoint-config": ("delete_endpoint_config", "EndpointConfigName"),
             "model": ("delete_model", "ModelName")}
    deleted = []
    for item in sorted(created, key=lambda i: order.get(i["type"], 9)):
        if item["type"] not in calls:
            continue
        method, key = calls[item["type"]]
        try:
            getattr(sm, method)(**{key: item["id"]})
            deleted.append(f"{item['type']}:{item['id']}")
        except sm.exceptions.ClientError as exc:
            if aws.error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise
    return deleted
