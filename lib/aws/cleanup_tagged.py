"""Find and delete what the tool created, by its tags: the safety net when a whole run was lost."""

from __future__ import annotations

from lib import aws
from lib.aws.endpoints import delete_created


def delete_tagged(pipeline: str, execution_id: str | None = None, region: str | None = None,
                  dry_run: bool = False) -> list[str]:
    sm = aws.client("sagemaker", region)
    wanted = {aws.PIPELINE_TAG: pipeline, **({aws.EXECUTION_TAG: execution_id} if execution_id else {})}
    found = []
    listings = (("endpoint", "list_endpoints", "Endpoints", "EndpointArn", "EndpointName"),
                ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigArn",
                 "EndpointConfigName"),
                ("model", "list_models", "Models", "ModelArn", "ModelName"))
    for kind, method, key, arn_key, name_key in listings:
        for page in sm.get_paginator(method).paginate():  # every page, not just the first
            for item in page[key]:
                tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=item[arn_key]).get("Tags", [])}
                if all(tags.get(k) == v for k, v in wanted.items()):
                    found.append({"type": kind, "id": item[name_key]})
    if dry_run:
        return [f"{f['type']}:{f['id']}" for f in found]
    return delete_created(found, region)
