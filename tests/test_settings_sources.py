"""Where settings come from: our settings file, the SageMaker SDK's own defaults file (read once, by us),
a sibling pipeline_config.yaml that is really an evaluation config, and --input-data-path as a folder or
an s3:// prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import base_config, fake_aws

from lib.config import load_config
from pipelines.build_pipeline import main

ROLE = "arn:aws:iam::123456789012:role/FromSageMakerDefaults"
OUR_ROLE = "arn:aws:iam::123456789012:role/FromOurSettings"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-eval-pipelines:1"


def sdk_defaults(remote_function: dict, **sections) -> dict:
    return {"SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"RemoteFunction": remote_function}}, **sections}}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def no_aws(monkeypatch):
    """Any AWS call fails loudly: validate and plan make none."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


# --- item 1: a sibling pipeline_config.yaml that is an evaluation config; --input-data-path s3:// ---

def test_a_sibling_evaluation_config_is_not_read_as_settings(write_config, capsys):
    config = write_config(base_config())
    sibling = base_config()
    sibling["pipeline"]["name"] = "another"
    write_config(sibling, name="pipeline_config.yaml")  # the AWS sample names an evaluation config so
    cfg = load_config(config)
    assert cfg.pipeline_config_path is None and cfg.settings["sagemaker"]["step_instance_type"] == "ml.m5.xlarge"
    assert len(cfg.notes) == 1 and "is an evaluation config (it has `models`)" in cfg.notes[0]
    assert main(["validate", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "default settings" in out
    assert [line for line in err.splitlines() if line.startswith("note:")] == [f"note: {cfg.notes[0]}"]
    # the sample's own case: the config *is* pipeline_config.yaml
    assert main(["validate", "--config", str(config.parent / "pipeline_config.yaml")]) == 0
    assert "valid — pipeline 'another'" in capsys.readouterr().out


def test_an_evaluation_config_given_as_settings_is_refused(write_config, capsys):
    config = write_config(base_config())
    other = write_config(base_config(), name="other.yaml")
    assert main(["validate", "--config", str(config), "--pipeline-config", str(other)]) == 2
    err = capsys.readouterr().err
    assert "other.yaml" in err and "is an evaluation config" in err and len(err.strip().splitlines()) == 1


def test_input_data_path_takes_an_s3_prefix(write_config, no_aws, capsys):
    data = base_config(1)
    data["dataset"]["input_data_location"] = "not-here-locally.jsonl"  # in S3: not read at validate
    data["models"][0]["finetuning"] = {"train_data_path": "train_dataset", "validation_data_path": "../up/val"}
    config = write_config(data)
    prefix = "s3://my-bucket/llm-evaluation-at-scale-example"
    cfg = load_config(config, input_data_path=prefix + "/")
    assert cfg.evaluation["dataset"]["uri"] == f"{prefix}/not-here-locally.jsonl"
    assert cfg.models[0]["finetune"]["train_data_uri"] == f"{prefix}/train_dataset"
    assert cfg.models[0]["finetune"]["validation_data_uri"] == "s3://my-bucket/up/val"
    absolute = write_config({**data, "dataset": {**data["dataset"], "input_data_location": str(config.parent /
                                                                                               "eval.jsonl")}})
    assert load_config(absolute, input_data_path=prefix).evaluation["dataset"]["uri"] == str(config.parent /
                                                                                             "eval.jsonl")
    assert main(["plan", "--config", str(config), "--input-data-path", prefix]) == 0
    capsys.readouterr()
    for bad, expected in (("s3://My_Bucket/x", "'My_Bucket' is not an S3 bucket name"),
                          ("gs://bucket/x", "'gs' is not a location this tool reads"),
                          (str(config.parent / "no-such-folder"), "must be an existing folder or an s3://")):
        assert main(["validate", "--config", str(config), "--input-data-path", bad]) == 2
        err = capsys.readouterr().err
        assert "--input-data-path" in err and expected in err, err
    data["dataset"]["input_data_location"] = "../../../../escape.jsonl"
    assert main(["validate", "--config", str(write_config(data)), "--input-data-path", prefix]) == 2
    err = capsys.readouterr().err
    assert "dataset.input_data_location" in err and "goes above the bucket" in err


# --- item 2: the SageMaker SDK's defaults file ---

def test_the_sagemaker_defaults_file_beside_the_config_is_read_and_ours_wins(write_config, config_dir, no_aws,
                                                                            capsys, monkeypatch):
    defaults = config_dir / "config.yaml"
    config = write_config(base_config(), name="evaluation.yaml")
    write(defaults, sdk_defaults({
        "RoleArn": ROLE, "ImageUri": "from-defaults:1", "InstanceType": "ml.m5.large",
        "S3RootUri": "s3://defaults-bucket/some/prefix", "VolumeKmsKeyId": "alias/steps",
        "VpcConfig": {"Subnets": ["subnet-0abc"], "SecurityGroupIds": ["sg-0abc"]},
        "Tags": [{"Key": "team", "Value": "defaults"}, {"Key": "cost-centre", "Value": "42"}],
        "EnvironmentVariables": {"FROM_DEFAULTS": "1", "SHARED": "defaults"},
        "Dependencies": "./requirements.txt", "IncludeLocalWorkDir": True}))
    settings = write(config_dir / "settings.yaml", {"sagemaker": {
        "image_uri": IMAGE, "tags": {"team": "ours"}, "environment": {"SHARED": "ours"}}})
    cfg = load_config(config, pipeline_config=settings)
    sm = cfg.settings["sagemaker"]
    assert (sm["role_arn"], sm["image_uri"], sm["step_instance_type"]) == (ROLE, IMAGE, "ml.m5.large")
    assert (sm["bucket"], sm["prefix"], sm["kms_key"]) == ("defaults-bucket", "some/prefix", "alias/steps")
    assert (sm["subnets"], sm["security_group_ids"]) == (["subnet-0abc"], ["sg-0abc"])
    assert sm["tags"] == {"team": "ours", "cost-centre": "42"}  # merged per key, ours winning
    assert sm["environment"] == {"FROM_DEFAULTS": "1", "SHARED": "ours"}
    sources = cfg.settings["sources"]
    assert sources["sagemaker.role_arn"] == [f"{defaults} (SageMaker defaults)"]
    assert sources["sagemaker.image_uri"] == [str(settings)]
    assert sources["sagemaker.tags"] == [f"{defaults} (SageMaker defaults)", str(settings)]
    monkeypatch.chdir(config_dir)  # as a user in that folder: names as they would type them
    assert main(["plan", "--config", config.name, "--pipeline-config", "settings.yaml"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("settings: "))
    assert "role_arn, step_instance_type, kms_key, subnets, security_group_ids, bucket, prefix from config.yaml " \
           "(SageMaker defaults)" in line
    assert "image_uri from settings.yaml" in line
    assert "tags, environment from config.yaml (SageMaker defaults) + settings.yaml" in line
    assert "not used from config.yaml (SageMaker defaults): Dependencies, IncludeLocalWorkDir" in out
    # the evaluate step: the defaults file's CPU instance type
    assert "evaluate-model-0" in out and "ml.m5.large, warm pool 1200s" in out


def test_override_env_and_user_level_file(write_config, config_dir, tmp_path, monkeypatch):
    config = write_config(base_config(), name="evaluation.yaml")
    user_level = tmp_path / "xdg" / "sagemaker" / "config.yaml"
    user_level.parent.mkdir(parents=True)
    write(user_level, sdk_defaults({"RoleArn": ROLE}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    cfg = load_config(config)
    assert cfg.settings["sagemaker"]["role_arn"] == ROLE
    # the SDK's own siblings: the pipeline's role and the session's bucket
    write(user_level, {"SchemaVersion": "1.0", "SageMaker": {
        "Pipeline": {"RoleArn": OUR_ROLE}, "PythonSDK": {"Modules": {"Session": {"DefaultS3Bucket": "sess-bucket"}}}}})
    sm = load_config(config).settings["sagemaker"]
    assert (sm["role_arn"], sm["bucket"], sm["prefix"]) == (OUR_ROLE, "sess-bucket", "llm-eval-pipelines")
    # SAGEMAKER_USER_CONFIG_OVERRIDE (a folder, as the sample's notebook sets it) replaces the user-level file
    folder = tmp_path / "override"
    folder.mkdir()
    write(folder / "config.yaml", sdk_defaults({"ImageUri": IMAGE}))
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(folder))
    sm = load_config(config).settings["sagemaker"]
    assert (sm["image_uri"], sm["role_arn"]) == (IMAGE, None)
    # beside the config wins over the override
    write(config_dir / "config.yaml", sdk_defaults({"ImageUri": "beside:1"}))
    assert load_config(config).settings["sagemaker"]["image_uri"] == "beside:1"
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(tmp_path / "nowhere"))
    with pytest.raises(Exception, match="SAGEMAKER_USER_CONFIG_OVERRIDE names no SageMaker defaults file"):
        load_config(config)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", "s3://bucket/config")
    cfg = load_config(config)  # not read: no AWS call before a config validates
    assert any("is in S3: not read" in note for note in cfg.notes)


def test_another_config_yaml_beside_the_config_is_not_a_defaults_file(write_config):
    config = write_config(base_config())  # named config.yaml itself
    write_config(base_config(), name="evaluation.yaml")
    assert load_config(config).settings["sources"] == {}
    assert load_config(config.parent / "evaluation.yaml").settings["sources"] == {}  # config.yaml has `models`


@pytest.mark.parametrize("remote_function,where,expected", [
    ({"RoleArn": "MyRole"}, "SageMaker.PythonSDK.Modules.RemoteFunction.RoleArn", "is not an IAM role ARN"),
    ({"InstanceType": "m5.large"}, "RemoteFunction.InstanceType", "an instance type looks like"),
    ({"Tags": [{"Key": "aws:x", "Value": "y"}]}, "RemoteFunction.Tags[0]", "starts with 'aws:'"),
    ({"S3RootUri": "https://bucket/x"}, "RemoteFunction.S3RootUri", "s3://bucket/prefix"),
    ({"VpcConfig": {"Subnets": ["my-subnet"]}}, "VpcConfig.Subnets[0]", "a subnet id looks like"),
    ({"EnvironmentVariables": {"MY-VAR": "1"}}, "RemoteFunction.EnvironmentVariables", "environment variable"),
])
def test_a_bad_defaults_file_is_one_paragraph_naming_its_place(write_config, config_dir, capsys, remote_function,
                                                               where, expected):
    config = write_config(base_config(), name="evaluation.yaml")
    write(config_dir / "config.yaml", sdk_defaults(remote_function))
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml, line" in err and where in err and expected in err
    assert len(err.strip().splitlines()) == 1


def test_the_sdk_never_reads_the_defaults_file_itself(write_config, config_dir, monkeypatch):
    """The definition takes everything from our settings; the SDK's session carries an empty configuration,
    so no lookup validates a file (the 54x slowdown of `make bench`)."""
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    config = write_config(base_config(), name="evaluation.yaml")
    write(config_dir / "config.yaml", sdk_defaults({
        "RoleArn": ROLE, "ImageUri": IMAGE, "S3RootUri": "s3://defaults-bucket/root",
        "EnvironmentVariables": {"FROM_DEFAULTS": "1"}, "Tags": [{"Key": "team", "Value": "ml"}]}))
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config_dir))  # as the sample's notebook does
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="defaults-bucket")
        from pipelines.sagemaker_executor import build

        assembly = build(load_config(config))
        assert assembly.pipeline.sagemaker_session.sagemaker_config == {}
        definition = json.loads(assembly.pipeline.definition())
    job = definition["Steps"][0]["Arguments"]
    assert job["RoleArn"] == ROLE and job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["Environment"]["FROM_DEFAULTS"] == "1"
    assert {"Key": "team", "Value": "ml"} in job["Tags"]
    assert assembly.root == "s3://defaults-bucket/root/test-pipeline"


def test_a_local_run_finds_the_role_in_the_defaults_file(write_config, config_dir, monkeypatch, capsys):
    """`run` of a SageMaker-hosted model deploys it as the defaults file's role (it used to say
    "no execution role")."""
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch, LLM_EVAL_WAIT_FOR_ENDPOINTS="0")
    monkeypatch.delenv("LLM_EVAL_ROLE_ARN", raising=False)
    data = base_config(1)
    data["dataset"]["num_records"] = 2
    data["models"][0].update(  # moto knows only older instance types
        name="hf_model", provider="huggingface", model_id="tiiuae/falcon-7b", cleanup_endpoint=False,
        deployment_config={"instance_type": "ml.g4dn.xlarge", "image_uri": "tgi:1"})
    data["models"][0]["evaluation_config"]["max_retries"] = 0
    config = write_config(data, name="evaluation.yaml")
    write(config_dir / "config.yaml", sdk_defaults({"RoleArn": ROLE}))
    with moto.mock_aws():
        import boto3

        assert main(["run", "--config", str(config), "--output-dir", str(config_dir / "out")]) == 4
        sm = boto3.client("sagemaker")
        model = sm.describe_model(ModelName="llm-eval-hf-model")  # an underscore becomes a hyphen on AWS
        assert model["ExecutionRoleArn"] == ROLE
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
        assert tags["llm-eval-pipelines:model"] == "hf-model"
    capsys.readouterr()
    summary = json.loads((config_dir / "out" / "summary.json").read_text())
    assert "no execution role" not in json.dumps(summary)
    assert list(summary["models"]) == ["hf_model"]  # our own files keep the name as written
