"""Provider `jumpstart` (the default): JumpStartModel to deploy, JumpStartEstimator to fine-tune."""

from __future__ import annotations

from typing import Any

from lib import aws
from lib.aws.endpoints import describe_model, describe_resources, endpoint_exists, wait_in_service
from lib.providers.sagemaker_base import SageMakerEndpointProvider, role_arn, tags_for


def _session(model: dict[str, Any]):
    import boto3
    import sagemaker

    return sagemaker.Session(boto3.Session(region_name=model.get("region")))


def _accepts_eula(model: dict[str, Any]) -> bool:
    return "accept_eula=true" in (model["invoke"].get("custom_attributes") or "").lower()


class JumpStartProvider(SageMakerEndpointProvider):
    name = "jumpstart"
    batch_transform = True
    preload_modules = (*SageMakerEndpointProvider.preload_modules, "sagemaker.jumpstart.model",
                       "sagemaker.jumpstart.estimator")

    def finetune(self, model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        name = model["endpoint_name"]
        if model["invoke"].get("invocation") != "batch_transform" and endpoint_exists(name, model.get("region")):
            # as the AWS sample does: the fine-tuned model is already serving there; deploy reuses it
            context["progress"](f"endpoint {name} already exists: fine-tuning skipped, the endpoint is reused")
            return {"skipped": True, "reason": f"endpoint {name} already exists",
                    "artifact_identity": f"endpoint:{name}"}
        from sagemaker.jumpstart.estimator import JumpStartEstimator

        ft = model["finetune"]
        params = dict(ft["parameters"])
        # JumpStart's own hyperparameter specs (and the sample) spell booleans "True"/"False"
        hyper = {k: str(v) for k, v in params.items()
                 if k in ("epoch", "max_input_length", "instruction_tuned", "chat_dataset")}
        hyper.update({k: str(v) for k, v in (params.get("hyperparameters") or {}).items()})
        estimator = JumpStartEstimator(
            model_id=model["model_id"], model_version=model["model_version"], role=role_arn(),
            instance_type=params["instance_type"], instance_count=params["num_instances"],
            hyperparameters=hyper, environment={"accept_eula": "true" if _accepts_eula(model) else "false"},
            tags=tags_for(model, context), sagemaker_session=_session(model),
        )
        channels = {"training": ft["train_data_uri"]}
        if ft.get("validation_data_uri"):
            channels["validation"] = ft["validation_data_uri"]
        estimator.fit(channels, wait=True, logs=False)
        job = estimator.latest_training_job.name
        return {"training_job_name": job, "model_data_url": estimator.model_data,
                "artifact_identity": f"training-job:{job}"}

    def create(self, model: dict[str, Any], finetuned: dict[str, Any] | None, context: dict[str, Any],
               created: list[dict[str, str]]) -> dict[str, Any]:
        name, dep = model["endpoint_name"], model["deployment"]
        batch = model["invoke"].get("invocation") == "batch_transform"
        # The SDK names the model and endpoint config after the endpoint; record them before the call
        # so a deploy that fails half-way still leaves cleanup their names (deleting a missing one is a no-op).
        sm = aws.client("sagemaker", model.get("region"))
        kinds = [("model", "describe_model", "ModelName")]
        if not batch:
            kinds.append(("endpoint-config", "describe_endpoint_config", "EndpointConfigName"))
        for kind, describe, key in kinds:
            # the SDK quietly reuses a model that exists (cleanup would then delete it): only "not found"
            # lets the deploy go on; any other answer (throttling, access denied) stops it
            try:
                getattr(sm, describe)(**{key: name})
            except sm.exceptions.ClientError as exc:
                if aws.error_code(exc) != "ValidationException":
                    raise
                continue
            raise ValueError(f"a SageMaker {kind} named '{name}' already exists (this deploy did not make it); "
                             "choose another endpoint_name, or delete it")
        if batch:  # the model only, on JumpStart's inference image: a transform job runs it, no endpoint
            from sagemaker.jumpstart.model import JumpStartModel

            created.append({"type": "model", "id": name})
            # image, environment and artifact are JumpStart's for this instance type; a fine-tuned model
            # runs its training job's artifact in that container
            artifact = {"model_data": finetuned["model_data_url"]} if finetuned else {}
            JumpStartModel(model_id=model["model_id"], model_version=model["model_version"], role=role_arn(),
                           name=name, instance_type=dep["instance_type"], sagemaker_session=_session(model),
                           **artifact).create(instance_type=dep["instance_type"], tags=tags_for(model, context),
                                              accept_eula=_accepts_eula(model))
            return describe_model(name, model.get("region"))
        created.extend([{"type": "model", "id": name}, {"type": "endpoint-config", "id": name},
                        {"type": "endpoint", "id": name}])
        # not the SDK's wait, which sleeps 30 s before it first looks: `wait_in_service` below
        kwargs = dict(initial_instance_count=dep["num_instances"], instance_type=dep["instance_type"],
                      endpoint_name=name, tags=tags_for(model, context), model_name=name, wait=False)
        if finetuned:
            from sagemaker.jumpstart.estimator import JumpStartEstimator

            est = JumpStartEstimator.attach(finetuned["training_job_name"], model_id=model["model_id"],
                                            model_version=model["model_version"], sagemaker_session=_session(model))
            est.deploy(**kwargs)
        else:
            from sagemaker.jumpstart.model import JumpStartModel

            kwargs.pop("model_name")
            JumpStartModel(model_id=model["model_id"], model_version=model["model_version"], role=role_arn(),
                           name=name, instance_type=dep["instance_type"], sagemaker_session=_session(model)).deploy(
                accept_eula=_accepts_eula(model), **kwargs)
        wait_in_service(name, model.get("region"))
        return describe_resources(name, model.get("region"))
