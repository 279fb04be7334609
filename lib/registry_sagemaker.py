"""Register the selected model in the SageMaker Model Registry: group (created once, tagged), then a
model package with the evaluation as ModelMetrics in S3, customer metadata and an approval status."""

from __future__ import annotations

from typing import Any

from lib import aws, storage


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


def _metadata(record: dict[str, Any]) -> dict[str, str]:
    """CustomerMetadataProperties: string values, 256 characters at most."""
    flat = {"model": record["model"], "model_id": record["model_id"], "provider": record["provider"],
            "pipeline": record["pipeline"], "execution_id": record["execution_id"],
            "selection_metric": record["selection_metric"], "selection_value": str(record["selection_value"])}
    for eval_name, scores in (record.get("metrics") or {}).items():
        for score, value in scores.items():
            flat[f"{eval_name}.{score}"] = "" if value is None else f"{value:.6g}"
    return {k[:128]: str(v)[:256] for k, v in list(flat.items())[:50]}


def register_model_package(record: dict[str, Any], run_root: str, region: str | None = None) -> dict[str, Any]:
    sm = aws.client("sagemaker", region)
    tags = aws.resource_tags(record["pipeline"], record["execution_id"], record["model"])
    group = record["model_package_group_name"]
    created_group = ensure_group(group, record.get("model_package_group_description", ""), tags, region)
    metrics_uri = storage.write_json(storage.join(run_root, "registry", "evaluation.json"), {
        "model": record["model"], "metrics": record["metrics"], "selection_metric": record["selection_metric"],
        "selection_value": record["selection_value"]})
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"{record['model']} ({record['model_id']}) selected by {record['pipeline']}"[:1000],
        "ModelApprovalStatus": record["approval_status"],
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": _metadata(record),
        "Tags": tags,
    }
    deployment = record.get("deployment") or {}
    if deployment.get("image_uri"):
        container = {"Image": deployment["image_uri"]}
        if deployment.get("model_data_url"):
            container["ModelDataUrl"] = deployment["model_data_url"]
        request["InferenceSpecification"] = {
            "Containers": [container], "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"]}
    arn = sm.create_model_package(**request)["ModelPackageArn"]
    described = sm.describe_model_package(ModelPackageName=arn)
    return {**record, "model_package_arn": arn, "version": described.get("ModelPackageVersion"),
            "metrics_uri": metrics_uri, "created_group": created_group,
            "created": [{"type": "model-package", "id": arn}] + (
                [{"type": "model-package-group", "id": group}] if created_group else [])}
