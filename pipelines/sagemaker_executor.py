"""Turn a plan into a SageMaker Pipeline of `@step` functions: the same step functions the local run
calls, one training job each, a parallel branch per model.

Settings travel as `@step` arguments, never through a SageMaker config file: with a config file
present the SDK re-validates it at every lookup and a definition takes seconds per step. The SDK's
defaults file, where there is one, is read once by `lib.config.sagemaker_defaults` into the settings;
the session handed to the SDK carries an empty configuration, so the SDK never loads it again.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib import aws
from lib.config import RunConfig, is_remote_uri
from lib.errors import UserError
from lib.gc_pace import collecting_every
from lib.plan import KINDS, Param, Plan, Ref, Step, build_plan, call_arguments
from lib.providers import provider_class
from lib.run.layout import s3_root_template
from pipelines.sdk_uploads import DEFINITION_PACE, fast_definition


def quiet_sdk() -> None:
    """The SDK prints INFO lines (config lookups, credentials) to stdout on import and on use."""
    for name in ("sagemaker", "sagemaker.config", "botocore.credentials", "sagemaker.remote_function",
                 "sagemaker.workflow.utilities"):
        # the last one warns on every step that TrainingJobName is dropped, which is what we want
        logging.getLogger(name).setLevel(logging.ERROR if name.endswith("utilities") else logging.WARNING)


def param_name(kind: str) -> str:
    return f"{kind.capitalize()}InstanceType"


def step_compute(step: Step, settings: dict[str, Any]) -> dict[str, Any]:
    """The plan's compute hints mapped onto SageMaker: the step's instance type (per kind, else the
    default step type) and a warm pool where the hint asks for one."""
    from lib.plan.kinds import keep_alive_seconds

    sm = settings["sagemaker"]
    compute: dict[str, Any] = {"instance_type": sm["instance_types"].get(step.kind, sm["step_instance_type"])}
    if "training_instance_type" in step.compute:
        compute["training_instance_type"] = step.compute["training_instance_type"]
    keep_alive = keep_alive_seconds(step.kind, sm)
    if keep_alive:
        compute["keep_alive_period_in_seconds"] = keep_alive
    return compute


@dataclass
class Assembly:
    pipeline: Any
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (local path, s3 uri) to copy before upsert
    root: str = ""
    tags: list[dict[str, str]] = field(default_factory=list)  # on the pipeline and every step's job
    sweeper: Any = None  # the sweep pipeline, with sagemaker.sweep_on_failure


def _session(settings: dict[str, Any]):
    import boto3
    import sagemaker

    sm = settings["sagemaker"]
    boto_session = boto3.Session(region_name=sm.get("region") or os.environ.get("AWS_DEFAULT_REGION"))
    # a configuration given, the SDK loads no defaults file (SAGEMAKER_USER_CONFIG_OVERRIDE, ~/.config);
    # emptied after, so that no lookup re-validates anything: its values are in the settings already
    session = sagemaker.Session(boto_session=boto_session, default_bucket=sm.get("bucket"),
                                default_bucket_prefix=sm.get("prefix") or None,
                                sagemaker_config={"SchemaVersion": "1.0"})
    session.sagemaker_config = {}
    return session


def _remote_copy(cfg: RunConfig, root: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The evaluation config with local data paths replaced by S3 URIs, and the uploads that implies."""
    import copy

    ev = copy.deepcopy(cfg.evaluation)
    uploads: list[tuple[str, str]] = []

    def remote(path: str, name: str) -> str:
        if is_remote_uri(path):
            return path
        if Path(path).is_dir():
            uri = f"{root}/inputs/{name}"
            for f in sorted(Path(path).iterdir()):
                if f.is_file():
                    uploads.append((str(f), f"{uri}/{f.name}"))
            return uri
        uri = f"{root}/inputs/{name}/{Path(path).name}"
        uploads.append((path, uri))
        return uri

    ev["dataset"]["uri"] = remote(ev["dataset"]["uri"], "dataset")
    for model in ev["models"]:
        ft = model["finetune"]
        if ft:
            ft["train_data_uri"] = remote(ft["train_data_uri"], f"{model['name']}/train")
            if ft.get("validation_data_uri"):
                ft["validation_data_uri"] = remote(ft["validation_data_uri"], f"{model['name']}/validation")
    return ev, uploads


def _remote_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings the steps get on SageMaker: an MLflow store on this machine's disk (the default sqlite
    file) is left out, with a note, as a step's disk goes with its job."""
    from lib.config.tracking import is_local_store

    mlflow = (settings.get("tracking") or {}).get("mlflow")
    if not mlflow or not is_local_store(mlflow["uri"]):
        return settings
    print(f"note: tracking.mlflow: {mlflow['uri']} is on this machine's disk, which SageMaker steps cannot reach: "
          "the pipeline logs to no MLflow; give tracking.mlflow.uri the ARN of a SageMaker MLflow tracking server",
          file=sys.stderr)
    return {**settings, "tracking": {k: v for k, v in settings["tracking"].items() if k != "mlflow"}}


def build(cfg: RunConfig, session: Any = None) -> Assembly:
    """The SageMaker Pipeline object for ``cfg`` (nothing is created in AWS; the SDK uploads the
    serialized step functions to S3 when the definition is rendered)."""
    quiet_sdk()
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.function_step import step
    from sagemaker.workflow.parameters import ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    quiet_sdk()  # again: the SDK resets its loggers' levels when its modules load
    sm = cfg.settings["sagemaker"]
    where = cfg.pipeline_config_path or "pipeline_config.yaml"
    if not sm.get("role_arn"):
        raise UserError(f"{where}: sagemaker.role_arn is required to build a SageMaker pipeline "
                        "(the IAM role the steps run as); or RoleArn under SageMaker.PythonSDK.Modules.RemoteFunction "
                        "in the SageMaker defaults file (config.yaml beside the config)")
    for model in cfg.models:
        if not provider_class(model["provider"]).runs_on_sagemaker:
            raise UserError(f"{cfg.config_path}: models '{model['name']}' uses provider '{model['provider']}', which "
                            "runs only on this machine (`run`); give it a SageMaker provider to build a pipeline")
    if not sm.get("image_uri"):
        raise UserError(f"{where}: sagemaker.image_uri is required (or ImageUri in the SageMaker defaults file): the "
                        "SDK has no default image for Python 3.11; build and push ours with `make image` (see README)")
    session = session or _session(cfg.settings)
    bucket = sm.get("bucket") or session.default_bucket()
    prefix = (sm.get("prefix") or "").strip("/")
    root = "/".join(p for p in (f"s3://{bucket}", prefix, cfg.pipeline_name) if p)
    evaluation, uploads = _remote_copy(cfg, root)
    remote_cfg = RunConfig(evaluation, _remote_settings(cfg.settings), cfg.config_path, cfg.pipeline_config_path)
    plan: Plan = build_plan(remote_cfg)

    parameters = {
        "dataset_uri": ParameterString("DatasetUri", default_value=evaluation["dataset"]["uri"]),
        "model_approval_status": ParameterString("ModelApprovalStatus", default_value=sm["model_approval_status"]),
    }
    instance_params = {
        kind: ParameterString(param_name(kind),
                              default_value=sm["instance_types"].get(kind, sm["step_instance_type"]))
        for kind in KINDS
    }
    values = {"run_root": s3_root_template(root), "cache_root": f"{root}/cache",
              "execution_id": ExecutionVariables.PIPELINE_EXECUTION_ID, **parameters}
    env = {"LLM_EVAL_OFFLINE": "0", "LLM_EVAL_ROLE_ARN": sm["role_arn"], **sm.get("environment", {})}
    if sm.get("region"):
        env["AWS_DEFAULT_REGION"] = sm["region"]
    tags = [{"Key": k, "Value": v} for k, v in sm["tags"].items()] + aws.resource_tags(cfg.pipeline_name)
    retries = []
    if sm["max_retries"]:
        retries = [
            StepRetryPolicy(exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                            max_attempts=sm["max_retries"], interval_seconds=10, backoff_rate=2.0),
            SageMakerJobStepRetryPolicy(
                exception_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                                 SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                                 SageMakerJobExceptionTypeEnum.INTERNAL_ERROR],
                max_attempts=sm["max_retries"], interval_seconds=60, backoff_rate=2.0),
        ]

    delayed: dict[str, Any] = {}

    def resolve(value: Any) -> Any:
        if isinstance(value, Ref):
            return delayed[value.step]
        if isinstance(value, Param):
            return values[value.name]
        return value

    def job(fn: Any, name: str, description: str, instance_type: Any, keep_alive: int = 0) -> Any:
        return step(
            fn, name=name, display_name=name, description=description,
            retry_policies=retries or None, environment_variables=env, image_uri=sm["image_uri"],
            instance_type=instance_type, keep_alive_period_in_seconds=keep_alive,
            role=sm["role_arn"], security_group_ids=sm.get("security_group_ids") or None,
            subnets=sm.get("subnets") or None, tags=tags, volume_kms_key=sm.get("kms_key"),
            volume_size=sm["volume_size"],
        )

    with collecting_every(DEFINITION_PACE):  # each step makes ~125 SDK objects that live until the render
        for s in plan.steps:
            module, _, fn_name = s.function.partition(":")
            fn = getattr(importlib.import_module(module), fn_name)
            decorated = job(fn, s.name, s.description or s.kind, instance_params[s.kind],
                            step_compute(s, cfg.settings).get("keep_alive_period_in_seconds", 0))
            args, kwargs = call_arguments(s, fn, resolve)
            delayed[s.name] = decorated(*args, **kwargs)
            extra = [d for d in s.after if d not in s.reads]  # the SDK derives the others from the arguments
            if extra:
                delayed[s.name]._step.add_depends_on([delayed[d]._step for d in extra])

    pipeline = Pipeline(
        name=cfg.pipeline_name,
        parameters=[*parameters.values(), *instance_params.values()],
        steps=list(delayed.values()),
        sagemaker_session=session,
    )
    sweeper = None
    if sm.get("sweep_on_failure"):
        from lib.aws.failure_rule import sweeper_name
        from steps.sweep import sweep

        sweeper = Pipeline(name=sweeper_name(cfg.pipeline_name), sagemaker_session=session, steps=[
            job(sweep, "sweep", f"Delete what stopped or failed executions of {cfg.pipeline_name} left"[:256],
                sm["step_instance_type"])(cfg.pipeline_name, sm.get("region"))])

    fast_definition(pipeline, session)
    if sweeper is not None:
        fast_definition(sweeper, session)
    return Assembly(pipeline, uploads, root, tags, sweeper)


def parallelism(settings: dict[str, Any]) -> dict[str, int]:
    # a dict, not ParallelismConfiguration: the SDK's object form fails its own request validation
    return {"MaxParallelExecutionSteps": settings["sagemaker"]["max_parallel_steps"]}

