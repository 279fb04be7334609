"""Validate a SageMaker pipeline definition against AWS's published JSON Schema (../shared/schemas).

The schema predates fields the API takes today. An error is forgiven only where:
- an "additional property" is a field botocore's model of CreateTrainingJob knows (ContainerEntrypoint,
  ContainerArguments, KeepAlivePeriodInSeconds, Environment, RetryStrategy), or the top-level
  PipelineExperimentConfig;
- OutputDataConfig.S3OutputPath is a Std:Join;
- a retry policy's ExceptionType is a list of the schema's own values: the AWS developer guide gives
  `"ExceptionType": [String]` (pipelines-retry-policy), the schema a single string.
Everything else fails, including the DisplayName pattern and a missing Description.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

SCHEMA = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas" / \
    "sagemaker-pipeline-definition.schema.json"


@lru_cache(maxsize=1)
def training_job_fields() -> frozenset[str]:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateTrainingJob").input_shape
    names: set[str] = set()
    seen: set[str] = set()

    def walk(s) -> None:
        if s.name in seen:
            return
        seen.add(s.name)
        for member_name, member in getattr(s, "members", {}).items():
            names.add(member_name)
            walk(member)
        if getattr(s, "member", None) is not None:
            walk(s.member)

    walk(shape)
    return frozenset(names)


def _forgivable(error: ValidationError) -> bool:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = set(error.instance) - set(error.schema.get("properties", {}))
        if path == [] and extra == {"PipelineExperimentConfig"}:
            return True
        return bool(extra) and extra <= training_job_fields()
    if path and path[-1] == "S3OutputPath" and isinstance(error.instance, dict) and "Std:Join" in error.instance:
        return True
    if len(path) >= 2 and path[-1] == "ExceptionType" and isinstance(error.instance, list):
        allowed = error.schema.get("enum") or []
        return error.validator in ("type", "enum") and all(x in allowed for x in error.instance)
    return False


def _branch_errors(error: ValidationError) -> list[ValidationError]:
    """For a step's oneOf: the errors of the branch its Type selects."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    matching = [errs for errs in branches.values() if not any(list(e.relative_path) == ["Type"] for e in errs)]
    return matching[0] if matching else [error]


def problems(definition: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    out = []
    pending = list(Draft7Validator(schema).iter_errors(definition))
    while pending:
        error = pending.pop()
        if error.validator == "oneOf" and error.context:
            branch = _branch_errors(error)
            if branch != [error]:
                pending.extend(branch)
                continue
        if not _forgivable(error):
            out.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")
    return out
