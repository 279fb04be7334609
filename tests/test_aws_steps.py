"""The step functions against moto: deploy reuse, own-only cleanup, failures, the model registry."""
# (moto knows only older instance types, so these tests use ml.g4dn.xlarge)

from __future__ import annotations

import json

import pytest
from conftest import JUMPSTART_IMAGE, fake_aws

from steps.evaluate import KEPT_OF_DEPLOYMENT

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def sm(monkeypatch):
    fake_aws(monkeypatch, LLM_EVAL_ROLE_ARN=ROLE)
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="runs")
        yield boto3.client("sagemaker")


def existing_endpoint(sm, name: str) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:1"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def model_entry(name: str, provider: str = "huggingface", endpoint: str | None = None) -> dict:
    return {"name": name, "provider": provider, "model_id": "tiiuae/falcon-7b", "model_version": "*",
            "endpoint_name": endpoint or f"llm-eval-{name}", "region": "us-east-1", "pipeline": "p",
            "deployment": {"instance_type": "ml.g4dn.xlarge", "num_instances": 1, "image_uri": "tgi:1"},
            "invoke": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                       "prompt_template": "$model_input"}, "finetune": None}


def endpoint_names(sm) -> set[str]:
    return {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}


def test_deploy_reuses_an_existing_endpoint_and_cleanup_leaves_it(sm, tmp_path):
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    existing_endpoint(sm, "shared-endpoint")
    model = model_entry("a", endpoint="shared-endpoint")
    result = deploy(model, None, str(tmp_path), "exec-1")
    assert result["status"] == "succeeded" and result["reused"] and result["created"] == []
    assert result["image_uri"] == "img:1"
    assert cleanup(model, result, {})["deleted"] == []
    assert "shared-endpoint" in endpoint_names(sm)


def test_deploy_creates_tagged_resources_and_cleanup_removes_only_those(sm, tmp_path):
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    existing_endpoint(sm, "someone-elses")
    model = model_entry("b")
    result = deploy(model, None, str(tmp_path), "exec-2")
    assert result["status"] == "succeeded" and not result["reused"]
    assert {c["type"] for c in result["created"]} == {"model", "endpoint-config", "endpoint"}
    arn = sm.describe_endpoint(EndpointName="llm-eval-b")["EndpointArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"llm-eval-pipelines:pipeline": "p", "llm-eval-pipelines:execution": "exec-2",
                    "llm-eval-pipelines:model": "b"}
    done = cleanup(model, result, {})
    assert sorted(done["deleted"]) == ["endpoint-config:llm-eval-b", "endpoint:llm-eval-b", "model:llm-eval-b"]
    assert endpoint_names(sm) == {"someone-elses"}
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["someone-elses"]


def test_a_deploy_failing_half_way_is_data_and_cleanup_removes_its_part(sm, tmp_path):
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    # moto rejects ml.g5 at CreateEndpointConfig, as AWS rejects a type a region lacks: the model
    # exists by then, the config and endpoint never do
    model = model_entry("c")
    model["deployment"]["instance_type"] = "ml.g5.48xlarge"
    result = deploy(model, None, str(tmp_path), "exec-3")
    assert result["status"] == "failed" and "instanceType" in result["error"]
    assert result["created"] == [{"type": "model", "id": "llm-eval-c"}]
    assert cleanup(model, result, {})["deleted"] == ["model:llm-eval-c"]
    assert sm.list_models()["Models"] == [] and endpoint_names(sm) == set()


def test_evaluate_of_a_failed_deploy_is_failed_not_raised(sm, tmp_path):
    from steps.evaluate import evaluate

    result = evaluate(model_entry("d"), {"status": "failed", "error": "no capacity", "created": []},
                      {"status": "succeeded", "uri": "unused"}, [], str(tmp_path))
    assert result["status"] == "failed" and "no capacity" in result["error"]


def selection_for(best: str | None, register: dict | None = None) -> dict:
    """What the select step hands register: its status and the run's summary record."""
    from lib.run.records import ModelResult, RunSummary, Selection

    models = {}
    if best:
        models[best] = ModelResult(
            best, provider="huggingface", model_id="tiiuae/falcon-7b",
            scores={"factual_knowledge": {"factual_knowledge": 0.61, "factual_knowledge_quasi_exact": 0.64}},
            deployment={"image_uri": "tgi:1", "model_data_url": "s3://runs/model.tar.gz"}, register=register)
    selection = Selection("factual_knowledge", best=best, best_value=0.61 if best else None,
                          ranking=[{"model": best, "value": 0.61}] if best else [])
    return {"status": "succeeded", "summary": RunSummary("p", "exec", models, selection).to_dict()}


def test_register_creates_group_and_package_with_metrics(sm):
    import boto3

    from lib import storage
    from steps.register import register

    root = "s3://runs/p/runs/{execution_id}"
    registry = {"model_package_group_name": "trivia-models", "model_package_group_description": "d"}
    record = register(registry, selection_for("falcon"), "Approved", root, "exec-4")
    assert record["status"] == "succeeded" and record["version"] == 1 and record["created_group"]
    package = sm.describe_model_package(ModelPackageName=record["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["factual_knowledge.factual_knowledge"] == "0.61"
    assert package["CustomerMetadataProperties"]["execution_id"] == "exec-4"
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert json.loads(storage.read_text(metrics_uri))["metrics"]["factual_knowledge"]["factual_knowledge"] == 0.61
    group_arn = sm.describe_model_package_group(ModelPackageGroupName="trivia-models")["ModelPackageGroupArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=group_arn)["Tags"]}
    assert tags["llm-eval-pipelines:pipeline"] == "p"
    summary = storage.read_json("s3://runs/p/runs/exec-4/summary.json")
    assert summary["registry"]["model_package_arn"] == record["model_package_arn"]
    assert storage.exists("s3://runs/p/runs/exec-4/registry.json")
    assert boto3.client("s3").head_object(Bucket="runs", Key="p/runs/exec-4/report.html")
    same = register(registry, selection_for("falcon"), None, root, "exec-5")  # nothing changed
    assert same["status"] == "skipped" and "identical to version 1" in same["reason"]
    changed = selection_for("falcon")
    changed["summary"]["models"]["falcon"]["scores"]["factual_knowledge"]["factual_knowledge"] = 0.65
    again = register(registry, changed, None, root, "exec-5")
    assert again["version"] == 2 and not again["created_group"]
    assert again["approval_status"] == "PendingManualApproval"
    # the sample's per-model register_config names its own group
    own = selection_for("falcon", register={"model_package_group_name": "FMEvaluationFineTunedModel"})
    third = register(registry, own, None, root, "exec-6")
    assert third["model_package_group_name"] == "FMEvaluationFineTunedModel" and third["version"] == 1


def test_register_without_a_winner_is_skipped(sm, tmp_path):
    from steps.register import register

    record = register({"model_package_group_name": "g"}, selection_for(None), None, str(tmp_path), "e")
    assert record["status"] == "skipped"
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_cleanup_command_finds_resources_by_tag(sm, tmp_path):
    from lib.aws.cleanup_tagged import delete_tagged
    from steps.deploy import deploy

    deploy(model_entry("e"), None, str(tmp_path), "exec-6")
    existing_endpoint(sm, "untagged")
    assert delete_tagged("p", "other-execution") == []
    deleted = delete_tagged("p", "exec-6")
    assert sorted(deleted) == ["endpoint-config:llm-eval-e", "endpoint:llm-eval-e", "model:llm-eval-e"]
    assert endpoint_names(sm) == {"untagged"}


def test_output_cache_in_s3(sm):
    from lib.engine.cache import OutputCache

    cache = OutputCache("s3://runs/cache")
    assert cache.get("ab" * 32) is None  # NoSuchKey is a miss
    cache.put("ab" * 32, {"output": "Paris"})
    assert cache.get("ab" * 32) == {"output": "Paris"}


def test_a_reused_endpoint_is_deleted_when_the_config_says_so_or_we_left_it(sm, tmp_path):
    from lib import aws
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    # cleanup_endpoint: true — the sample's way: the named endpoint goes at the end, even though it existed
    existing_endpoint(sm, "sample-endpoint")
    model = {**model_entry("s", endpoint="sample-endpoint"), "cleanup_endpoint": True}
    result = deploy(model, None, str(tmp_path), "exec-7")
    assert result["reused"] and result["created"] == []
    assert sorted(cleanup(model, result)["deleted"]) == [
        "endpoint-config:sample-endpoint", "endpoint:sample-endpoint", "model:sample-endpoint"]
    assert "sample-endpoint" not in endpoint_names(sm)

    # not said, but an earlier (interrupted) run of this pipeline left it: its tag says so
    left = deploy(model_entry("t"), None, str(tmp_path), "exec-8")  # creates llm-eval-t, tagged pipeline p
    again = deploy(model_entry("t"), None, str(tmp_path), "exec-9")
    assert again["reused"] and {a["id"] for a in again["adopted"]} == {"llm-eval-t"}
    assert "endpoint:llm-eval-t" in cleanup(model_entry("t"), again)["deleted"]
    assert left["created"] and "llm-eval-t" not in endpoint_names(sm)

    # someone else's endpoint (not ours, config silent) stays; so does one the config says to keep
    existing_endpoint(sm, "theirs")
    for entry in (model_entry("u", endpoint="theirs"), {**model_entry("u", endpoint="theirs"),
                                                          "cleanup_endpoint": False}):
        kept = deploy(entry, None, str(tmp_path), "exec-10")
        assert kept["adopted"] == [] and cleanup(entry, kept)["deleted"] == []
    assert "theirs" in endpoint_names(sm)
    arn = sm.describe_endpoint(EndpointName="theirs")["EndpointArn"]
    assert aws.PIPELINE_TAG not in {t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def test_the_endpoint_provider_never_gets_a_cleanup_step(tmp_path):
    import yaml
    from conftest import base_config, write_dataset

    from lib.config import load_config
    from lib.plan import build_plan

    write_dataset(tmp_path / "eval.jsonl")
    data = base_config(1)
    data["models"][0].update(provider="endpoint", endpoint_name="prod", cleanup_endpoint=True)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    plan = build_plan(load_config(tmp_path / "c.yaml"))
    assert [s.name for s in plan.steps if s.kind == "cleanup"] == []


def test_the_registered_package_deploys_an_endpoint(sm, tmp_path):
    from steps.deploy import deploy
    from steps.register import register

    model = model_entry("w")
    model["deployment"]["env"] = {"HF_MODEL_QUANTIZE": "bitsandbytes"}
    deployment = deploy(model, None, str(tmp_path), "exec-20")
    from lib.run.records import ModelResult, RunSummary, Selection

    kept = {k: deployment[k] for k in KEPT_OF_DEPLOYMENT if deployment.get(k)}  # the container it ran in
    assert kept["environment"]["HF_MODEL_ID"] == "tiiuae/falcon-7b" and kept["instance_type"] == "ml.g4dn.xlarge"
    winner = ModelResult("w", provider="huggingface", model_id="tiiuae/falcon-7b", deployment=kept,
                         scores={"factual_knowledge": {"factual_knowledge": 0.7}})
    summary = RunSummary("p", "exec-20", {"w": winner}, Selection("factual_knowledge", best="w", best_value=0.7))
    record = register({"model_package_group_name": "best"}, {"status": "succeeded", "summary": summary.to_dict()},
                      "Approved", "s3://runs/p/runs/{execution_id}", "exec-20")
    package = sm.describe_model_package(ModelPackageName=record["model_package_arn"])
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == "tgi:1" and container["Environment"]["HF_MODEL_QUANTIZE"] == "bitsandbytes"
    assert package["CustomerMetadataProperties"]["algorithm"] == "factual_knowledge"  # the sample's keys
    assert package["CustomerMetadataProperties"]["score"] == "0.7"
    # deploy it from the registry, as a release would
    sm.create_model(ModelName="from-registry", ExecutionRoleArn=ROLE,
                    Containers=[{"ModelPackageName": record["model_package_arn"]}])
    sm.create_endpoint_config(EndpointConfigName="from-registry", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "from-registry", "InstanceType": "ml.g4dn.xlarge",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="from-registry", EndpointConfigName="from-registry")
    assert sm.describe_endpoint(EndpointName="from-registry")["EndpointStatus"] == "InService"


def test_jumpstart_fine_tune_is_skipped_when_its_endpoint_exists(sm, tmp_path):
    from steps.deploy import deploy
    from steps.finetune import finetune

    existing_endpoint(sm, "llm-eval-tuned")
    model = {**model_entry("tuned", provider="jumpstart"), "model_id": "meta-textgeneration-llama-2-7b",
             "finetune": {"train_data_uri": "s3://runs/train/", "validation_data_uri": None,
                          "parameters": {"instance_type": "ml.g5.12xlarge", "num_instances": 1, "epoch": 1}}}
    result = finetune(model, str(tmp_path), None, "exec-30")  # no training job: it would need the JumpStart hub
    assert result["status"] == "succeeded" and result["skipped"]
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    deployed = deploy(model, result, str(tmp_path), "exec-30")
    assert deployed["reused"] and deployed["endpoint_name"] == "llm-eval-tuned"


def jumpstart_entry(name: str, instance_type: str = "ml.g4dn.xlarge") -> dict:
    entry = model_entry(name, provider="jumpstart")
    entry.update(model_id="llm-eval-tiny", model_version="1.0.0")
    entry["deployment"] = {"instance_type": instance_type, "num_instances": 1}
    return entry


def test_a_jumpstart_model_deploys_as_its_catalogue_says_and_cleanup_removes_it(sm, tmp_path, jumpstart_catalogue,
                                                                               monkeypatch):
    import sagemaker

    from steps.cleanup import cleanup
    from steps.deploy import deploy

    def sdk_wait(*args, **kwargs):  # it sleeps 30 s before it first looks: ours looks at once
        raise AssertionError("the SDK's endpoint wait was used")

    monkeypatch.setattr(sagemaker.Session, "wait_for_endpoint", sdk_wait)
    model = jumpstart_entry("js", instance_type="ml.g4dn.12xlarge")
    result = deploy(model, None, str(tmp_path), "exec-40")
    assert result["status"] == "succeeded" and not result["reused"]
    assert [c["type"] for c in result["created"]] == ["model", "endpoint-config", "endpoint"]
    # JumpStart's container for this instance type (its own environment), not for the catalogue's default
    assert result["image_uri"] == JUMPSTART_IMAGE and result["environment"]["SM_NUM_GPUS"] == "4"
    assert result["instance_type"] == "ml.g4dn.12xlarge" and result["model_names"] == ["llm-eval-js"]
    # registered, the package names the artifact as JumpStart's model does (an S3 source, not a URL)
    from lib.run.records import ModelResult, RunSummary, Selection
    from steps.register import register

    kept = {k: result[k] for k in KEPT_OF_DEPLOYMENT if result.get(k)}
    winner = ModelResult("js", provider="jumpstart", model_id="llm-eval-tiny", deployment=kept,
                         scores={"factual_knowledge": {"factual_knowledge": 0.7}})
    summary = RunSummary("p", "exec-40", {"js": winner}, Selection("factual_knowledge", best="js", best_value=0.7))
    record = register({"model_package_group_name": "js"}, {"status": "succeeded", "summary": summary.to_dict()},
                      "Approved", "s3://runs/p/runs/{execution_id}", "exec-40")
    container = sm.describe_model_package(ModelPackageName=record["model_package_arn"])[
        "InferenceSpecification"]["Containers"][0]
    assert container["ModelDataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://jumpstart-cache-prod-us-east-1/llm-eval-tiny/artifacts/model.tar.gz")
    arn = sm.describe_endpoint(EndpointName="llm-eval-js")["EndpointArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags["llm-eval-pipelines:pipeline"] == "p" and tags["llm-eval-pipelines:execution"] == "exec-40"
    done = cleanup(model, result, {})
    assert sorted(done["deleted"]) == ["endpoint-config:llm-eval-js", "endpoint:llm-eval-js", "model:llm-eval-js"]
    assert endpoint_names(sm) == set() and sm.list_models()["Models"] == []


def test_a_jumpstart_deploy_failing_half_way_leaves_cleanup_what_it_made(sm, tmp_path, jumpstart_catalogue):
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    # moto rejects ml.g5 at CreateEndpointConfig: JumpStart's SDK has made the model by then
    model = jumpstart_entry("jf", instance_type="ml.g5.48xlarge")
    result = deploy(model, None, str(tmp_path), "exec-41")
    assert result["status"] == "failed" and "instanceType" in result["error"]
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["llm-eval-jf"]
    done = cleanup(model, result, {})
    assert "model:llm-eval-jf" in done["deleted"] and done["status"] == "succeeded"
    assert sm.list_models()["Models"] == [] and endpoint_names(sm) == set()


def test_a_jumpstart_deploy_that_cannot_tell_whether_its_model_exists_makes_nothing(sm, tmp_path,
                                                                                 jumpstart_catalogue):
    import boto3
    from botocore.exceptions import ClientError

    from steps.deploy import deploy

    def denied(**kwargs):  # the role may not describe models: "exists" is unknown, so nothing is made
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DescribeModel")

    boto3.DEFAULT_SESSION.events.register("before-call.sagemaker.DescribeModel", denied)
    result = deploy(jumpstart_entry("jd"), None, str(tmp_path), "exec-42")
    assert result["status"] == "failed" and "AccessDenied" in result["error"] and result["created"] == []
    assert sm.list_models()["Models"] == []


def test_an_endpoint_that_fails_to_come_up_says_why(sm, tmp_path, jumpstart_catalogue):
    import boto3

    from steps.cleanup import cleanup
    from steps.deploy import deploy

    def failed(parsed, **kwargs):  # what SageMaker says once the container would not start
        parsed.update(EndpointStatus="Failed", FailureReason="The primary container for production variant "
                      "AllTraffic did not pass the ping health check")

    boto3.DEFAULT_SESSION.events.register("after-call.sagemaker.DescribeEndpoint", failed)
    model = jumpstart_entry("jw")
    result = deploy(model, None, str(tmp_path), "exec-43")
    assert result["status"] == "failed" and "did not pass the ping health check" in result["error"]
    boto3.DEFAULT_SESSION.events.unregister("after-call.sagemaker.DescribeEndpoint", failed)
    assert [c["type"] for c in result["created"]] == ["model", "endpoint-config", "endpoint"]
    assert sorted(cleanup(model, result, {})["deleted"]) == [
        "endpoint-config:llm-eval-jw", "endpoint:llm-eval-jw", "model:llm-eval-jw"]

