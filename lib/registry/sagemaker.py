"""Register the selected model in the SageMaker Model Registry: group (created once, tagged), then a
model package with the evaluation as ModelMetrics in S3, customer metadata and an approval status."""

from __future__ import annotations

from typing import Any

from lib import aws, storage
from lib.run.layout import RunLayout
from lib.run.records import SUCCEEDED, Registration


def ensure_group(name: str, description: str, tags: list[dict[str, str]], region: str | None = None) -> bool:
    """True if this call created the group."""
    sm = aws.client("sagemaker", region)
    try:
        sm.describe_model_package_group(ModelPackageGroupName=name)
        return False
    except sm.exceptions.ClientError as exc:
        if aws.error_code(exc) not in ("ValidationException", "ResourceNotFound"):
            raise
    sm.create_model_package_group(ModelPackageGroupName=name, ModelPackageGroupDescription=description, Tags=tags)
    return True


def _metadata(r: Registration) -> dict[str, str]:
    """CustomerMetadataProperties: string values, 256 characters at most."""
    flat = {"model": r.model, "model_id": r.model_id, "provider": r.provider, "pipeline": r.pipeline,
            "execution_id": r.execution_id, "selection_metric": r.selection_metric,
            "selection_value": str(r.selection_value), "fingerprint": r.fingerprint or "",
            # the AWS sample's keys, for users who look for them
            "algorithm": (r.selection_metric or "").partition(".")[0], "score": str(r.selection_value),
            "gate": (r.gate_reason or "")[:256]}
    # lineage, before the scores (50 entries at most); a location too long to keep whole is left out, not cut
    lineage = {"dataset_uri": r.dataset_uri, "dataset_hash": r.dataset_hash, "config_hash": r.config_hash,
               "report_uri": r.report_uri, "mlflow_run_id": r.mlflow_run_id}
    flat.update({k: v for k, v in lineage.items() if v and len(v) <= 256})
    for eval_name, scores in (r.metrics or {}).items():
        for score, value in scores.items():
            flat[f"{eval_name}.{score}"] = "" if value is None else f"{value:.6g}"
    # AWS refuses an empty value; 50 entries at most
    return {k[:128]: str(v)[:256] for k, v in list((k, v) for k, v in flat.items() if str(v))[:50]}


def register_model_package(r: Registration, layout: RunLayout, region: str | None = None) -> Registration:
    sm = aws.client("sagemaker", region)
    tags = aws.resource_tags(r.pipeline, r.execution_id, r.model)
    group = r.model_package_group_name
    created_group = ensure_group(group, r.model_package_group_description, tags, region)
    metrics_uri = storage.write_json(layout.registry_metrics, {
        "model": r.model, "metrics": r.metrics, "selection_metric": r.selection_metric,
        "selection_value": r.selection_value, "dataset_hash": r.dataset_hash, "per_record": r.per_record,
        "recipe": r.recipe})
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": (f"{r.model} ({r.model_id}) selected by {r.pipeline}"
                                    + (f"; {r.gate_reason}" if r.gate_reason else ""))[:1000],
        "ModelApprovalStatus": r.approval_status,
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": _metadata(r),
        "Tags": tags,
    }
    deployment = r.deployment or {}
    if deployment.get("image_uri"):  # deployable from the registry: the container the winner ran in
        container: dict[str, Any] = {"Image": deployment["image_uri"]}
        if deployment.get("model_data_url"):
            container["ModelDataUrl"] = deployment["model_data_url"]
        elif deployment.get("model_data_source"):  # a JumpStart model's artifact, as its model names it
            container["ModelDataSource"] = deployment["model_data_source"]
        if deployment.get("environment"):
            container["Environment"] = {str(k): str(v) for k, v in deployment["environment"].items()}
        request["InferenceSpecification"] = {
            "Containers": [container], "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"]}
        if deployment.get("instance_type"):
            request["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] = [deployment["instance_type"]]
    arn = sm.create_model_package(**request)["ModelPackageArn"]
    described = sm.describe_model_package(ModelPackageName=arn)
    r.status, r.model_package_arn, r.version = SUCCEEDED, arn, described.get("ModelPackageVersion")
    r.metrics_uri, r.created_group = metrics_uri, created_group
    r.created = [{"type": "model-package", "id": arn}] + (
        [{"type": "model-package-group", "id": group}] if created_group else [])
    return r
