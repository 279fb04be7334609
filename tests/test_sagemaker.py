"""The SageMaker executor and CLI under moto: definitions, DAG shape, settings, upsert/start/schedule."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, base_config, fake_aws

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-eval-pipelines:latest"
PIPELINE_SETTINGS = {"sagemaker": {
    "region": "us-east-1", "role_arn": ROLE, "bucket": "llm-eval-test", "prefix": "pipelines", "image_uri": IMAGE,
    "keep_alive_period_in_seconds": 600, "instance_types": {"evaluate": "ml.g5.4xlarge"},
    "max_parallel_steps": 7, "tags": {"team": "ml"}}}


@pytest.fixture
def aws(monkeypatch):
    fake_aws(monkeypatch, AWS_REGION="us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="llm-eval-test")
        yield boto3


def write_configs(folder: Path, data: dict) -> tuple[Path, Path]:
    (folder / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "pipeline_config.yaml").write_text(yaml.safe_dump(PIPELINE_SETTINGS))
    return folder / "config.yaml", folder / "pipeline_config.yaml"


def build(config: Path, input_data_path: str | None = None):
    from lib.config import load_config
    from pipelines.sagemaker_executor import build as build_pipeline

    assembly = build_pipeline(load_config(config, input_data_path=input_data_path))
    return assembly, json.loads(assembly.pipeline.definition())


@pytest.fixture
def hybrid(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    (data / "train_dataset").mkdir(parents=True)
    (data / "val_dataset").mkdir()
    shutil.copy(ROOT / "data" / "trivia_eval.jsonl", data / "evaluation_dataset_trivia.jsonl")
    shutil.copy(ROOT / "data" / "trivia_train.jsonl", data / "train_dataset")
    shutil.copy(ROOT / "data" / "trivia_validation.jsonl", data / "val_dataset")
    config = tmp_path / "sample.yaml"
    shutil.copy(ROOT / "examples" / "sample_hybrid_config.yaml", config)
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(PIPELINE_SETTINGS))
    return config, str(data)


def references(step: dict) -> set[str]:
    """Every step a step waits on: DependsOn plus the step outputs its arguments read."""
    text = json.dumps(step["Arguments"])
    return set(step.get("DependsOn", [])) | set(re.findall(r"Steps\.([A-Za-z0-9_-]+)\.", text))


def steps_by_name(definition: dict) -> dict[str, dict]:
    return {s["Name"]: s for s in definition["Steps"]}


needs_schema = pytest.mark.skipif(not (ROOT.parent / "shared" / "schemas").is_dir(),
                                  reason="../shared (AWS's pipeline-definition schema) is not beside this clone")


@needs_schema
@pytest.mark.parametrize("n_models", [1, 50])
def test_definition_validates_against_aws_schema(aws, config_dir, n_models):
    from definition_schema import problems

    config, _ = write_configs(config_dir, base_config(n_models))
    _, definition = build(config)
    assert len(definition["Steps"]) == 1 + 3 * n_models + 3  # + select, gate, register
    assert problems(definition) == []


@needs_schema
def test_hybrid_sample_definition_validates_and_uploads_its_data(aws, hybrid):
    from definition_schema import problems

    config, data = hybrid
    assembly, definition = build(config, data)
    assert problems(definition) == []
    names = steps_by_name(definition)
    assert "finetune-llama2-7b-finetuned" in names
    uploaded = {uri for _, uri in assembly.uploads}
    root = "s3://llm-eval-test/pipelines/llm-evaluation-multi-models-hybrid"
    assert f"{root}/inputs/dataset/evaluation_dataset_trivia.jsonl" in uploaded
    assert any("/inputs/llama2-7b-finetuned/train/" in uri for uri in uploaded)


def test_schema_check_catches_what_it_should(aws, config_dir):
    if not (ROOT.parent / "shared" / "schemas").is_dir():
        pytest.skip("../shared is not beside this clone")
    from definition_schema import problems

    config, _ = write_configs(config_dir, base_config(1))
    _, definition = build(config)
    definition["Steps"][0]["DisplayName"] = "steps.preprocess.preprocess"  # the SDK's default
    definition["Steps"][1]["Arguments"]["ResourceConfig"]["NotAField"] = 1
    found = problems(definition)
    assert len(found) == 2


def test_dag_shape_settings_and_names(aws, hybrid):
    config, data = hybrid
    _, definition = build(config, data)
    steps = steps_by_name(definition)
    evaluates = [n for n in steps if n.startswith("evaluate-")]
    for name in evaluates:  # an evaluate never waits on another model's branch
        model = name[len("evaluate-"):]
        assert references(steps[name]) <= {"preprocess", f"deploy-{model}"}, references(steps[name])
    assert {"deploy-llama2-7b-finetuned"} <= references(steps["evaluate-llama2-7b-finetuned"])
    assert "finetune-llama2-7b-finetuned" in references(steps["deploy-llama2-7b-finetuned"])
    for name in (n for n in steps if n.startswith("cleanup-")):
        # what deletes a model's endpoint waits on that model's own branch only, never on
        # select or register (a step after a failed one never runs: that is how endpoints leak)
        model = name[len("cleanup-"):]
        assert references(steps[name]) == {f"deploy-{model}", f"evaluate-{model}"}, references(steps[name])
    assert set(evaluates) <= references(steps["select"])
    for step in definition["Steps"]:
        assert re.match(r"^[A-Za-z0-9\-_]{1,64}$", step["DisplayName"])
        assert step["Description"] and "/" not in step["Description"]
        args = step["Arguments"]
        assert args["AlgorithmSpecification"]["TrainingImage"] == IMAGE and args["RoleArn"] == ROLE
        assert args["Environment"]["LLM_EVAL_OFFLINE"] == "0"
        keep_alive = args["ResourceConfig"]["KeepAlivePeriodInSeconds"]
        kind = step["Name"].split("-")[0]
        assert keep_alive == (600 if kind in ("finetune", "evaluate") else 0)
        assert step.get("RetryPolicies"), "throttling and capacity retries on every step"
    finetune = steps["finetune-llama2-7b-finetuned"]["Arguments"]["ResourceConfig"]
    assert finetune["InstanceType"] == {"Get": "Parameters.FinetuneInstanceType"}
    evaluate = steps["evaluate-falcon-7b"]["Arguments"]["ResourceConfig"]
    assert evaluate["InstanceType"] == {"Get": "Parameters.EvaluateInstanceType"}
    params = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert params["EvaluateInstanceType"] == "ml.g5.4xlarge"
    assert params["PreprocessInstanceType"] == "ml.m5.xlarge"
    assert params["FinetuneInstanceType"] == "ml.m5.xlarge"  # not a second ml.g5.12xlarge beside the job
    assert params["ModelApprovalStatus"] == "PendingManualApproval"
    assert params["DatasetUri"].startswith("s3://llm-eval-test/pipelines/")


def test_upsert_start_schedule_unschedule(aws, config_dir, capsys):
    from pipelines.build_pipeline import main

    config, _ = write_configs(config_dir, base_config(2))
    assert main(["upsert", "--config", str(config)]) == 0
    sm = aws.client("sagemaker")
    described = sm.describe_pipeline(PipelineName="test-pipeline")
    assert json.loads(described["PipelineDefinition"])["Steps"]
    assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 7}
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=described["PipelineArn"])["Tags"]}
    assert tags["team"] == "ml" and tags["llm-eval-pipelines:pipeline"] == "test-pipeline"
    s3_keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="llm-eval-test")["Contents"]]
    assert "pipelines/test-pipeline/inputs/dataset/eval.jsonl" in s3_keys
    assert main(["upsert", "--config", str(config)]) == 0  # update, not a second pipeline

    # moto's execution "succeeds" without running a step, so it wrote no summary: that is a broken run
    assert main(["start", "--config", str(config), "--param", "EvaluateInstanceType=ml.g5.8xlarge",
                 "--wait", "--poll-seconds", "0.01"]) == 1
    executions = sm.list_pipeline_executions(PipelineName="test-pipeline")["PipelineExecutionSummaries"]
    assert len(executions) == 1
    params = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=executions[0]["PipelineExecutionArn"])["PipelineParameters"]
    assert {"Name": "EvaluateInstanceType", "Value": "ml.g5.8xlarge"} in params
    assert "execution Succeeded" in capsys.readouterr().out  # (the summary's absence went to stderr)
    assert main(["start", "--config", str(config), "--param", "NoSuchParam=1"]) == 2

    scheduler = aws.client("scheduler")
    assert main(["schedule", "--config", str(config), "--cron", "0 6 ? * MON *"]) == 0
    schedule = scheduler.get_schedule(Name="test-pipeline-schedule")
    assert schedule["ScheduleExpression"] == "cron(0 6 ? * MON *)"
    assert schedule["Target"]["Arn"].endswith(":pipeline/test-pipeline")
    assert main(["unschedule", "--config", str(config)]) == 0
    assert scheduler.list_schedules()["Schedules"] == []
    assert main(["schedule", "--config", str(config), "--rate", "1 days"]) == 2


def test_no_aws_call_before_the_config_validates(config_dir, monkeypatch, capsys):
    from pipelines.build_pipeline import main

    data = base_config(1)
    data["models"][0]["deployment_config"]["num_instances"] = 0
    config, _ = write_configs(config_dir, data)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any call would fail loudly
    for command in ("definition", "upsert", "start"):
        assert main([command, "--config", str(config)]) == 2
        assert "num_instances" in capsys.readouterr().err


def test_missing_role_or_image_is_a_clear_error(aws, config_dir, capsys):
    from pipelines.build_pipeline import main

    config, pipeline_config = write_configs(config_dir, base_config(1))
    settings = json.loads(json.dumps(PIPELINE_SETTINGS))
    del settings["sagemaker"]["image_uri"]
    pipeline_config.write_text(yaml.safe_dump(settings))
    assert main(["definition", "--config", str(config)]) == 2
    assert "image_uri is required" in capsys.readouterr().err


def test_local_provider_cannot_go_to_sagemaker(config_dir, monkeypatch, capsys):
    from pipelines.build_pipeline import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # refused before any AWS call

    data = base_config(1)
    data["models"][0].update(provider="local", model_id="smollm2-135m-instruct")
    config, _ = write_configs(config_dir, data)
    assert main(["definition", "--config", str(config)]) == 2
    assert "provider 'local'" in capsys.readouterr().err


def test_works_against_an_endpoint_url(monkeypatch):
    """boto3 honours AWS_ENDPOINT_URL: every client the tool makes goes there."""
    from lib import aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert aws.client("sagemaker").meta.endpoint_url == "http://localhost:4566"


def test_upsert_adds_the_sweep_on_failure_net(aws, config_dir, capsys):
    from lib.aws.failure_rule import rule_name
    from pipelines.build_pipeline import main

    config, settings = write_configs(config_dir, base_config(1))
    data = yaml.safe_load(settings.read_text())
    data["sagemaker"]["sweep_on_failure"] = True
    settings.write_text(yaml.safe_dump(data))
    assert main(["upsert", "--config", str(config)]) == 0
    sm, events = aws.client("sagemaker"), aws.client("events")
    pipeline_arn = sm.describe_pipeline(PipelineName="test-pipeline")["PipelineArn"]
    sweeper = sm.describe_pipeline(PipelineName="test-pipeline-sweep")
    steps = json.loads(sweeper["PipelineDefinition"])["Steps"]
    assert [s["Name"] for s in steps] == ["sweep"]
    rule = events.describe_rule(Name=rule_name("test-pipeline"))
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"] == {"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed", "Stopped"]}
    target = events.list_targets_by_rule(Rule=rule_name("test-pipeline"))["Targets"]
    assert [(t["Arn"], t["RoleArn"]) for t in target] == [(sweeper["PipelineArn"], ROLE)]
    assert "started by" in capsys.readouterr().out
    assert main(["upsert", "--config", str(config)]) == 0  # again: updated, not duplicated
    assert len(events.list_targets_by_rule(Rule=rule_name("test-pipeline"))["Targets"]) == 1


def test_the_sweep_deletes_what_finished_executions_left_and_nothing_else(aws, config_dir, monkeypatch):
    from pipelines.build_pipeline import main
    from steps.deploy import deploy
    from steps.sweep import sweep

    monkeypatch.setenv("LLM_EVAL_ROLE_ARN", ROLE)
    config, _ = write_configs(config_dir, base_config(1))
    assert main(["upsert", "--config", str(config)]) == 0
    sm = aws.client("sagemaker")
    arn = sm.start_pipeline_execution(PipelineName="test-pipeline")["PipelineExecutionArn"]
    finished = arn.rsplit("/", 1)[-1]  # moto's executions end at once
    model = {"name": "m", "provider": "huggingface", "model_id": "x", "model_version": "*", "region": "us-east-1",
             "pipeline": "test-pipeline", "endpoint_name": "left-behind",
             "deployment": {"instance_type": "ml.g4dn.xlarge", "num_instances": 1, "image_uri": "tgi:1"},
             "invoke": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER"}, "finetune": None}
    deploy(model, None, str(config_dir), finished)
    deploy({**model, "name": "n", "endpoint_name": "local-run"}, None, str(config_dir), "a-local-run")
    result = sweep("test-pipeline", "us-east-1")
    assert sorted(result["deleted"]) == ["endpoint-config:left-behind", "endpoint:left-behind", "model:left-behind"]
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["local-run"]


def test_start_wait_exits_with_the_runs_verdict(aws):
    from lib import storage
    from lib.run.records import Gate, ModelResult, RunSummary, Selection
    from pipelines.cli.sagemaker_cmds import verdict

    root = "s3://llm-eval-test/pipelines/p"
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123"
    rejected = RunSummary("p", "abc123", {"w": ModelResult("w")}, Selection("x", best="w"),
                          gate=Gate("succeeded", decision="rejected", model="w", reasons=["below the floor"]))
    storage.write_json(f"{root}/runs/abc123/summary.json", rejected.to_dict())
    assert verdict(root, arn) == 6  # CI stops the release: the gate said no
    storage.write_json(f"{root}/runs/abc123/summary.json", RunSummary("p", "abc123", {"w": ModelResult("w")},
                                                                     Selection("x", best="w")).to_dict())
    assert verdict(root, arn) == 0


def test_the_sdks_step_uploads_all_land_before_the_definition_returns(aws, config_dir):
    """The definition's uploads go through one client in parallel (`pipelines/sdk_uploads.py`); every
    step's function and arguments, with their metadata, are in S3 when definition() returns, and can be
    read back as the SDK reads them in the step's job."""
    from sagemaker.remote_function.core.serialization import _MetaData

    config, _ = write_configs(config_dir, base_config(3))
    assembly, definition = build(config)
    s3 = aws.client("s3")
    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="llm-eval-test")
            for o in page.get("Contents", [])}
    steps = [s["Name"] for s in definition["Steps"]]
    for name in steps:
        mine = sorted(k for k in keys if f"/{name}/" in k and k.endswith((".pkl", "metadata.json")))
        assert len(mine) == 4, (name, mine)  # function and arguments, each with its metadata
        for pkl in (k for k in mine if k.endswith("payload.pkl")):
            body = s3.get_object(Bucket="llm-eval-test", Key=pkl)["Body"].read()
            meta = _MetaData.from_json(s3.get_object(Bucket="llm-eval-test",
                                                     Key=pkl.replace("payload.pkl", "metadata.json"))["Body"].read())
            assert body and re.fullmatch(r"[0-9a-f]{64}", meta.sha256_hash)
    assert assembly.pipeline.uploaded_objects == 4 * len(steps)
    assert assembly.pipeline.upload_ways == {"quick": 4 * len(steps), "put_object": 0}  # moto took them quick


def test_a_failed_step_upload_fails_the_definition_naming_the_object(aws, config_dir):
    config, _ = write_configs(config_dir, base_config(1))
    from lib.config import load_config
    from pipelines.sagemaker_executor import build as build_pipeline

    assembly = build_pipeline(load_config(config))
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    refusal = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access Denied"
               b"</Message></Error>")

    def refuse(request, **kwargs):  # S3 refuses one object, as a bucket policy or a full quota would
        if request.url.endswith("arguments/payload.pkl") and "/register/" in request.url:
            return AWSResponse(request.url, 403, {}, MockRawResponse(refusal))
        return None  # the others go on to moto

    # first, before moto's own answer: every PUT, the quick one and put_object's, goes through this event
    assembly.pipeline.sagemaker_session.boto_session.events.register_first("before-send.s3.PutObject", refuse)
    with pytest.raises(RuntimeError, match=r"uploading the step code to s3://llm-eval-test/\S+/register/\S+ "
                                           r"failed: .*AccessDenied"):
        assembly.pipeline.definition()
