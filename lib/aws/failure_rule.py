"""The last net against leaks: an EventBridge rule that, when an execution of the pipeline fails or is
stopped, starts a small sweep pipeline of ours (`steps/sweep.py`) that deletes what executions no
longer running left behind. An EventBridge rule passes only static parameters to a pipeline target,
so the sweep finds its work by tags, not by the failed execution's id."""

from __future__ import annotations

import json
from typing import Any

from lib import aws


def sweeper_name(pipeline: str) -> str:
    return f"{pipeline}-sweep"[:256]


def rule_name(pipeline: str) -> str:
    return f"{pipeline}-sweep-on-failure"[:64]


def event_pattern(pipeline_arn: str) -> dict[str, Any]:
    return {"source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
            "detail": {"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed", "Stopped"]}}


def put_failure_rule(pipeline: str, pipeline_arn: str, sweeper_arn: str, role_arn: str,
                     tags: list[dict[str, str]], region: str | None = None) -> str:
    """Create or update the rule and its target; its ARN."""
    events = aws.client("events", region)
    arn = events.put_rule(Name=rule_name(pipeline), EventPattern=json.dumps(event_pattern(pipeline_arn)),
                          State="ENABLED", Tags=tags,
                          Description=f"Sweep what failed or stopped executions of {pipeline} left running"[:512])
    events.put_targets(Rule=rule_name(pipeline), Targets=[{"Id": "sweep", "Arn": sweeper_arn, "RoleArn": role_arn}])
    return arn["RuleArn"]


def delete_failure_rule(pipeline: str, region: str | None = None) -> bool:
    events = aws.client("events", region)
    try:
        events.remove_targets(Rule=rule_name(pipeline), Ids=["sweep"])
        events.delete_rule(Name=rule_name(pipeline))
        return True
    except events.exceptions.ResourceNotFoundException:
        return False
