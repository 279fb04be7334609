"""Find and delete what the tool created, by its tags: the safety net when a whole run was lost."""

from __future__ import annotations

from typing import Any

from lib import aws
from lib.aws.endpoints import delete_created

_LISTINGS = (("endpoint", "list_endpoints", "Endpoints", "EndpointArn", "EndpointName"),
             ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigArn",
              "EndpointConfigName"),
             ("model", "list_models", "Models", "ModelArn", "ModelName"))
RUNNING_STATUSES = ("Executing", "Stopping")


def find_tagged(pipeline: str, execution_id: str | None = None, region: str | None = None) -> list[dict[str, Any]]:
    """Endpoints, endpoint configs and models tagged with ``pipeline`` (and ``execution_id``), each with
    the execution that created it."""
    sm = aws.client("sagemaker", region)
    wanted = {aws.PIPELINE_TAG: pipeline, **({aws.EXECUTION_TAG: execution_id} if execution_id else {})}
    found = []
    for kind, method, key, arn_key, name_key in _LISTINGS:
        for page in sm.get_paginator(method).paginate():  # every page, not just the first
            for item in page[key]:
                tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=item[arn_key]).get("Tags", [])}
                if all(tags.get(k) == v for k, v in wanted.items()):
                    found.append({"type": kind, "id": item[name_key], "execution": tags.get(aws.EXECUTION_TAG)})
    return found


def delete_tagged(pipeline: str, execution_id: str | None = None, region: str | None = None,
                  dry_run: bool = False) -> list[str]:
    found = find_tagged(pipeline, execution_id, region)
    if dry_run:
        return [f"{f['type']}:{f['id']}" for f in found]
    return delete_created(found, region)


def execution_statuses(pipeline: str, region: str | None = None) -> dict[str, str]:
    """Execution id (the tag's value: the last part of the ARN) -> status, for every execution of
    ``pipeline`` SageMaker knows."""
    sm = aws.client("sagemaker", region)
    statuses: dict[str, str] = {}
    kwargs: dict[str, Any] = {"PipelineName": pipeline}
    while True:
        page = sm.list_pipeline_executions(**kwargs)
        for e in page.get("PipelineExecutionSummaries", []):
            statuses[e["PipelineExecutionArn"].rsplit("/", 1)[-1]] = e.get("PipelineExecutionStatus", "")
        if not page.get("NextToken"):
            return statuses
        kwargs["NextToken"] = page["NextToken"]


def delete_finished(pipeline: str, region: str | None = None, dry_run: bool = False) -> list[str]:
    """Delete what executions of ``pipeline`` that are no longer running left behind. Resources of an
    execution SageMaker does not know (a local run, perhaps still going) are left alone."""
    statuses = execution_statuses(pipeline, region)
    done = [f for f in find_tagged(pipeline, None, region)
            if f["execution"] in statuses and statuses[f["execution"]] not in RUNNING_STATUSES]
    if dry_run:
        return [f"{f['type']}:{f['id']}" for f in done]
    return delete_created(done, region)
