"""JSON Schemas for the two config files (draft 2020-12).

``x-hint`` on a subschema is shown instead of the validator's generic wording when that
subschema fails, so users read "instance types look like ml.g5.2xlarge", not a regex.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string", "minLength": 1}
_POS_INT = {"type": "integer", "minimum": 1}
_INSTANCE_TYPE = {
    "type": "string",
    "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
    "x-hint": "an instance type looks like 'ml.g5.2xlarge'",
}
_SCALARS = {"type": ["string", "number", "boolean", "null"]}


def _int(low: int, high: int, why: str) -> dict[str, Any]:
    """A whole number in [low, high]; ``why`` (shown when it is too large) says where the bound comes from."""
    return {"type": "integer", "minimum": low, "maximum": high, "x-limit": why}


# Bounds: AWS's own where AWS has one, else a sanity bound far above any real use (said so in x-limit).
_INSTANCES = _int(1, 100, "a sanity bound; SageMaker's default instance quotas per account are far lower")
_RECORDS = _int(1, 10_000_000, "a sanity bound")
MAX_SHARDS = 64  # dataset.shards; `auto` never chooses more either
_VERSION = {"type": "string", "minLength": 1, "x-version": True}
_PATH = {"type": "string", "pattern": r"^[^\x00-\x1f\x7f]*$", "x-hint": "a path holds no control characters"}
_ENV_NAME = {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$",
             "x-hint": "an environment variable name has letters, digits and underscores, not starting with a digit"}
_CONFIDENCE = {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1,
               "x-hint": "a confidence is a number between 0.5 and 1, such as 0.95"}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


_DEPLOYMENT = _obj(
    {"instance_type": _INSTANCE_TYPE, "num_instances": _INSTANCES, "image_uri": {**_STR, "maxLength": 255},
     # SageMaker's container Environment: at most 100 variables, names and values up to 1024 characters
     "env": {"type": "object", "maxProperties": 100, "propertyNames": {**_ENV_NAME, "maxLength": 1024},
             "additionalProperties": {"type": "string", "maxLength": 1024}}},
)
_MODEL_EVAL = _obj(
    {
        "output": {"type": "string", "maxLength": 1024},
        "content_template": {"type": ["string", "array", "object"]},
        "inference_parameters": {"type": ["object", "null"]},
        "custom_attributes": {"type": ["object", "string", "null"], "maxLength": 1024},  # SageMaker's limit
        "prompt_template": {"type": "string"},
        "system_prompt": {"type": "string"},
        "max_concurrency": _int(1, 256, "a sanity bound: one thread per request in flight"),
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                            "x-limit": "an hour per model call"},
        "max_retries": _int(0, 20, "retries with exponential backoff: 20 already wait for hours"),
        "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
        # how the records reach the model: one request each to an endpoint, or one batch transform job
        "invocation": {"enum": ["endpoint", "batch_transform"]},
    },
)
_FINETUNE_PARAMS = _obj(
    {
        "instance_type": _INSTANCE_TYPE,
        "num_instances": _INSTANCES,
        "epoch": _int(1, 1000, "a sanity bound"),
        "max_input_length": _int(1, 1_048_576, "a sanity bound: a million tokens"),
        "instruction_tuned": {"type": "boolean"},
        "chat_dataset": {"type": "boolean"},
        # local fine-tune knobs (ignored by JumpStart, which has its own hyperparameters)
        "max_steps": _int(1, 1_000_000, "a sanity bound"),
        "batch_size": _int(1, 4096, "a sanity bound"),
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                          "x-limit": "learning rates are small fractions such as 0.0003"},
        "method": {"enum": ["lora", "full"]},
        "max_train_records": _RECORDS,
        "hyperparameters": {"type": "object"},
    },
)
_FINETUNE = _obj(
    {"train_data_path": {"type": "string"}, "validation_data_path": {"type": "string"}, "parameters": _FINETUNE_PARAMS},
)
_REGISTRY = _obj(
    {
        "model_package_group_name": {
            "type": "string",
            "pattern": r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
            "x-hint": "a model package group name has 1-63 letters, digits and hyphens",
        },
        "model_package_group_description": {"type": "string", "maxLength": 1024},  # SageMaker's limit
        "approval_status": {"enum": ["Approved", "Rejected", "PendingManualApproval"]},
    },
)
_MODEL = _obj(
    {
        "name": {"type": "string"},
        "provider": {"type": "string", "minLength": 1},
        "model_provider": {"type": "string", "minLength": 1},  # the sample's advanced layout
        "model_id": _STR,
        "model_version": _VERSION,
        "endpoint_name": {"type": "string"},
        "region": {"type": "string"},
        "deployment_config": _DEPLOYMENT,
        "evaluation_config": _MODEL_EVAL,
        "finetuning": _FINETUNE,
        "finetuning_config": _FINETUNE,
        "register_config": _REGISTRY,
        "cleanup_endpoint": {"type": "boolean"},
        "evaluate_base_model": {"type": "boolean"},  # a fine-tuned model's base becomes candidate <name>-base
    },
    required=("name", "model_id"),
)
# The keys of every kind of algorithm entry: fmeval's (algorithm, module, config, target_output_delimiter,
# num_records), LLMJudge's and CustomScorer's. Which keys a kind takes is checked when the entry is
# normalised (`lib.config.load._normalise_algorithm`), so a misspelt key still gets "did you mean" here.
_JUDGE_MODEL_KEYS = ("provider", "model_id", "model_version", "region", "endpoint_name", "deployment_config",
                     "evaluation_config")


def judge_schema(provider_keys: dict[str, Any] | None = None) -> dict[str, Any]:
    """A judge is a model without a name, fine-tuning or registry; ``provider_keys`` (its provider's
    `config_schema`) are allowed too. Without them any further key passes (checked once the provider is known)."""
    properties = {k: _MODEL["properties"][k] for k in _JUDGE_MODEL_KEYS}
    if provider_keys is None:
        return {"type": "object", "properties": properties, "required": ["provider", "model_id"]}
    return _obj({**properties, **provider_keys}, required=("provider", "model_id"))


_SCORE_NAME = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$",
               "x-hint": "a score name has lowercase letters, digits and underscores, starting with a letter"}
_ALGORITHM = _obj(
    {
        "algorithm": _STR,
        "module": _STR,
        "config": {"type": ["string", "object"]},
        "target_output_delimiter": {"type": "string", "minLength": 1,
                                    "x-hint": "it separates the accepted answers in a target, such as '<OR>'"},
        "num_records": _RECORDS,
        "name": _SCORE_NAME,  # LLMJudge, CustomScorer: the scores' name in summary.json
        # LLMJudge
        "judge": judge_schema(),
        "metrics": {"type": "array", "items": _STR, "minItems": 1},
        "custom_metrics": {"type": "array", "minItems": 1, "items": _obj({
            "name": _SCORE_NAME,
            "prompt_template": {**_STR, "maxLength": 20_000},
            "scale": {"oneOf": [{"type": "array", "items": _int(-1000, 1000, "a sanity bound"), "minItems": 2,
                                 "maxItems": 2},
                                {"const": "pass_fail"}],
                      "x-hint": "a scale is [low, high], such as [1, 5], or pass_fail"},
        }, required=("name", "prompt_template"))},
        "max_parse_retries": _int(0, 5, "re-asks of one rating"),
        # CustomScorer
        "scorer": {**_STR, "x-hint": "an import path such as 'mypkg.scorers:domain_score'"},
        "preset": {"enum": ["exact_match", "f1", "bleu", "rouge"]},
    },
    required=("algorithm",),
)

_BENCHMARK = _obj(  # lib/benchmarks/config.py
    {
        "suite": {"enum": ["mmlu", "gsm8k"]},
        "name": _SCORE_NAME,
        "subtasks": {"type": "array", "items": {**_STR, "maxLength": 200}, "minItems": 1, "maxItems": 10_000},
        "max_per_subtask": _RECORDS,
        "columns": _obj({
            "question": {**_STR, "maxLength": 200},
            "choices": {"oneOf": [{**_STR, "maxLength": 200},
                                  {"type": "array", "items": {**_STR, "maxLength": 200}, "minItems": 2,
                                   "maxItems": 26}],
                        "x-hint": "choices are one column holding a list, or a list of 2-26 columns such as "
                                  "[A, B, C, D]"},
            "answer": {**_STR, "maxLength": 200},
            "subtask": {**_STR, "maxLength": 200},
        }),
    },
    required=("suite",),
)

# `tracking:` (either file; the settings file wins per key): lib/config/tracking.py. `true` turns a sink on with
# its defaults, `false` off (a settings file can turn off what an evaluation config turned on).
_ALARM = _obj({
    "metric": {**_STR, "maxLength": 255},
    "below": {"type": ["number", "string"], "pattern": "^champion$",
              "x-hint": "below is a number (a floor) or 'champion' (the selected model scored below the registry's "
                        "champion)"},
    "above": {"type": "number"},
    "model": {**_STR, "maxLength": 255},
    "name": {**_STR, "maxLength": 255},
    "actions": {"type": "array", "maxItems": 5, "items": {
        "type": "string", "pattern": r"^arn:aws[a-z\-]*:[a-z0-9\-]+:", "maxLength": 1600,
        "x-hint": "an alarm action is an ARN, such as an SNS topic's 'arn:aws:sns:us-east-1:123456789012:oncall'"}},
    "period_seconds": {"type": "integer", "minimum": 60, "maximum": 86400, "multipleOf": 60,
                       "x-hint": "a period is a whole number of minutes in seconds (60 to 86400)"},
})
_TRACKING = _obj({
    "mlflow": {**_obj({
        "uri": {**_STR, "maxLength": 2048, "pattern": r"^[^\x00-\x1f\x7f]*$",
                "x-hint": "a tracking URI holds no control characters"},
        "experiment": {**_STR, "maxLength": 500},
    }), "type": ["object", "boolean"]},
    "cloudwatch": {**_obj({
        "namespace": {"type": "string", "pattern": r"^(?!AWS/)[0-9A-Za-z.\-_/#:]{1,255}$",
                      "x-hint": "a CloudWatch namespace has 1-255 letters, digits and . - _ / # :, and does not "
                                "start with 'AWS/'"},
        "region": {"type": "string", "pattern": r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
                   "x-hint": "a region looks like 'us-east-1'"},
        "dashboard": {"type": ["boolean", "string"], "pattern": r"^[A-Za-z0-9_\-]{1,255}$",
                      "x-hint": "dashboard is true, false or a dashboard name (letters, digits, - and _)"},
        "alarms": {"type": "array", "items": _ALARM, "maxItems": 50},
    }), "type": ["object", "boolean"]},
})

EVALUATION_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "llm-eval-pipelines evaluation_config.yaml",
    **_obj(
        {
            "pipeline": _obj({"name": {"type": "string"}, "description": {"type": "string", "maxLength": 3072}},
                             required=("name",)),
            "dataset": _obj(
                {
                    "dataset_name": _STR,
                    "input_data_location": _STR,
                    "dataset_mime_type": {"type": "string"},
                    "model_input_key": _STR,
                    "target_output_key": _STR,
                    "num_records": _RECORDS,
                    "benchmark": _BENCHMARK,
                    # a number, or `auto`: chosen from the record count when the plan is built (lib/plan/build.py)
                    "shards": {"if": {"type": "string"},
                               "then": {"const": "auto", "x-hint": f"must be a whole number from 1 to {MAX_SHARDS}, "
                                        "or 'auto' to choose it from the dataset's record count"},
                               "else": _int(1, MAX_SHARDS, "SageMaker runs at most 50 parallel steps by default; "
                                            f"{MAX_SHARDS} is a sanity bound")},
                },
                required=("dataset_name", "input_data_location"),
                # a benchmark names its columns itself (benchmark.columns)
                **{"if": {"not": {"required": ["benchmark"]}},
                   "then": {"required": ["model_input_key", "target_output_key"]}},
            ),
            "models": {"type": "array", "items": _MODEL, "minItems": 1},  # see evaluation_schema
            "algorithms": {"type": "array", "items": _ALGORITHM, "minItems": 1},
            "selection": _obj({
                "metric": _STR, "direction": {"enum": ["max", "min"]},
                "objectives": {"type": "array", "minItems": 1, "items": _obj(
                    {"metric": _STR, "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
                     "direction": {"enum": ["max", "min"]}}, required=("metric",))},
                "constraints": {"type": "array", "items": _obj(
                    {"metric": _STR, "max": {"type": "number"}, "min": {"type": "number"}}, required=("metric",))},
                "confidence": _CONFIDENCE,
            }),
            "gate": _obj({
                "min": {"type": "object", "additionalProperties": {"type": "number"}},
                "champion": {"enum": ["registry", "none"]},
                "min_improvement": {"type": "number", "minimum": 0},
                "confidence": _CONFIDENCE,
                "on_fail": {"enum": ["Rejected", "PendingManualApproval"]},
            }),
            "budget": _obj({"max_usd": {"type": "number", "exclusiveMinimum": 0}}, required=("max_usd",)),
            "model_registry": _REGISTRY,
            "tracking": _TRACKING,
        },
        required=("pipeline", "dataset", "models"),
        # a benchmark brings its own scorer; any other dataset needs algorithms
        **{"if": {"required": ["dataset"], "properties": {"dataset": {"required": ["benchmark"]}}},
           "else": {"required": ["algorithms"]}},
    ),
}

_TAGS = {
    "oneOf": [
        {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        {
            "type": "array",
            "items": _obj({"Key": _STR, "Value": {"type": "string"}}, required=("Key", "Value")),
        },
    ],
    "x-hint": "tags are a mapping (team: ml) or a list of {Key, Value}",
}

PIPELINE_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "llm-eval-pipelines pipeline_config.yaml",
    **_obj(
        {
            "sagemaker": _obj(
                {
                    "region": {"type": "string", "pattern": r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
                               "x-hint": "a region looks like 'us-east-1'"},
                    "role_arn": {"type": "string"},
                    "bucket": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$",
                               "x-hint": "an S3 bucket name has 3-63 lowercase letters, digits, dots and hyphens"},
                    "prefix": {"type": "string", "maxLength": 512},
                    "image_uri": {"type": "string", "maxLength": 255},  # SageMaker's limit
                    # one number for every kind that keeps a warm pool, or a mapping per step kind (see
                    # pipeline_schema); SageMaker keeps a warm pool for at most an hour
                    "keep_alive_period_in_seconds": {"type": ["integer", "object"], "minimum": 0, "maximum": 3600,
                                                     "x-limit": "SageMaker's longest warm pool, an hour",
                                                     "properties": {}, "additionalProperties": False},
                    "step_instance_type": _INSTANCE_TYPE,
                    "instance_types": _obj({}),  # one key per step kind: see pipeline_schema
                    "volume_size": _int(1, 16384, "SageMaker's largest ML storage volume, 16 TB"),
                    "max_parallel_steps": _int(1, 1000, "a sanity bound"),
                    "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
                    "tags": _TAGS,
                    "kms_key": {"type": "string", "maxLength": 2048},  # the steps' volumes
                    # a VPC config holds 1-16 subnets and 1-5 security groups
                    "subnets": {"type": "array", "maxItems": 16, "items": {
                        "type": "string", "pattern": r"^subnet-[0-9a-z]+$",
                        "x-hint": "a subnet id looks like 'subnet-0123456789abcdef0'"}},
                    "security_group_ids": {"type": "array", "maxItems": 5, "items": {
                        "type": "string", "pattern": r"^sg-[0-9a-z]+$",
                        "x-hint": "a security group id looks like 'sg-0123456789abcdef0'"}},
                    # a training job's Environment: 100 variables (we set 3), names and values up to 512
                    "environment": {"type": "object", "maxProperties": 97,
                                    "propertyNames": {**_ENV_NAME, "maxLength": 512},
                                    "additionalProperties": {"type": "string", "maxLength": 512}},
                    "schedule": {"type": "string"},
                    "model_approval_status": {"enum": ["Approved", "Rejected", "PendingManualApproval"]},
                    "sweep_on_failure": {"type": "boolean"},
                },
            ),
            "cost": _obj({k: {"type": "number", "minimum": 0, "maximum": 1e6} for k in (
                "seconds_per_record", "endpoint_startup_minutes", "training_hours_per_epoch", "step_minutes",
                "prompt_tokens", "output_tokens")}),
            "tracking": _TRACKING,
            "prices": _obj({
                "instance_usd_per_hour": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
                "bedrock_usd_per_1k_tokens": {"type": "object", "additionalProperties": _obj(
                    {"input": {"type": "number", "minimum": 0}, "output": {"type": "number", "minimum": 0}},
                    required=("input", "output"))},
            }),
            "local": _obj(
                {
                    "output_dir": _PATH,
                    "max_workers": _int(1, 64, "a sanity bound: processes on this machine"),
                    "model_cache_dir": _PATH,
                },
            ),
        },
    ),
}



def evaluation_schema(provider_keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation config's schema where ``models[i]`` also allows the keys its provider declares
    (``provider_keys[i]``, from `Provider.config_schema`)."""
    import copy

    result = copy.deepcopy(EVALUATION_CONFIG_SCHEMA)
    models = result["properties"]["models"]
    models["prefixItems"] = [{**_MODEL, "properties": {**_MODEL["properties"], **keys}} for keys in provider_keys]
    return result


def pipeline_schema() -> dict[str, Any]:
    """The settings file's schema, with an instance type per step kind of the plan."""
    import copy

    from lib.plan.kinds import KINDS

    result = copy.deepcopy(PIPELINE_CONFIG_SCHEMA)
    sm = result["properties"]["sagemaker"]["properties"]
    sm["instance_types"]["properties"] = {k: _INSTANCE_TYPE for k in KINDS}
    sm["keep_alive_period_in_seconds"]["properties"] = {
        k: _int(0, 3600, "SageMaker's longest warm pool, an hour") for k in KINDS}
    return result
