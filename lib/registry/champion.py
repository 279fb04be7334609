"""The champion: the latest Approved version in a registry group, with the per-record scores it was
registered with (so a gate compares on the same records without evaluating it again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lib import storage
from lib.run.layout import RunLayout
from lib.run.records import SUCCEEDED


def find_champion(group: str, layout: RunLayout, region: str | None = None) -> dict[str, Any] | None:
    """{"model", "version", "per_record", "dataset_hash", "fingerprint", "package", "recipe"} or None."""
    if layout.is_remote:
        return _sagemaker_champion(group, region)
    index = Path(layout.local_registry_index(group))
    if not index.exists():
        return None
    approved = [r for r in storage.read_jsonl(str(index))
                if r.get("status") == SUCCEEDED and r.get("approval_status") == "Approved"]
    if not approved:
        return None
    r = approved[-1]
    return {"model": r.get("model"), "version": r.get("version"), "per_record": r.get("per_record") or {},
            "dataset_hash": r.get("dataset_hash"), "fingerprint": r.get("fingerprint"), "package": str(index),
            "recipe": r.get("recipe")}


def same_version(group: str, layout: RunLayout, fingerprint: str | None, region: str | None = None,
                 look_back: int = 20) -> dict[str, Any] | None:
    """A registered version with this fingerprint (same model, data and scores), among the latest
    ``look_back``: {"version", "fingerprint"} or None."""
    if not fingerprint:
        return None
    if layout.is_remote:
        from lib import aws

        sm = aws.client("sagemaker", region)
        try:
            packages = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                              SortOrder="Descending", MaxResults=look_back)["ModelPackageSummaryList"]
        except sm.exceptions.ClientError:
            return None
        for p in packages:
            described = sm.describe_model_package(ModelPackageName=p["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get("fingerprint") == fingerprint:
                return {"version": described.get("ModelPackageVersion"), "fingerprint": fingerprint}
        return None
    index = Path(layout.local_registry_index(group))
    rows = [r for r in storage.read_jsonl(str(index)) if r.get("status") == SUCCEEDED] if index.exists() else []
    match = next((r for r in reversed(rows[-look_back:]) if r.get("fingerprint") == fingerprint), None)
    return {"version": match.get("version"), "fingerprint": fingerprint} if match else None


def _sagemaker_champion(group: str, region: str | None) -> dict[str, Any] | None:
    from lib import aws

    sm = aws.client("sagemaker", region)
    try:
        packages = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved",
                                          SortBy="CreationTime", SortOrder="Descending",
                                          MaxResults=1)["ModelPackageSummaryList"]
    except sm.exceptions.ClientError:
        return None  # no group yet
    if not packages:
        return None
    arn = packages[0]["ModelPackageArn"]
    described = sm.describe_model_package(ModelPackageName=arn)
    metadata = described.get("CustomerMetadataProperties") or {}
    uri = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    evaluation: dict[str, Any] = {}
    if uri:
        try:
            evaluation = json.loads(storage.read_text(uri))
        except Exception:  # the metrics file is gone: a champion without per-record scores
            evaluation = {}
    return {"model": metadata.get("model"), "version": described.get("ModelPackageVersion"),
            "per_record": evaluation.get("per_record") or {}, "dataset_hash": evaluation.get("dataset_hash"),
            "fingerprint": metadata.get("fingerprint"), "package": arn, "recipe": evaluation.get("recipe")}
