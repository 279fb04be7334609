"""`evaluation_config.invocation: batch_transform`: no endpoint; the records go through one transform
job and its answers are joined back by id. Under moto, which records the job but runs nothing: the
service's part (reading the input, writing one joined output line per record) is written by the test
when the job is created."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import JUMPSTART_IMAGE, ROOT, fake_aws, write_dataset

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def aws(monkeypatch):
    fake_aws(monkeypatch, LLM_EVAL_ROLE_ARN=ROLE)
    with moto.mock_aws():
        import boto3

        boto3.setup_default_session()
        boto3.client("s3").create_bucket(Bucket="runs")
        yield boto3


def the_service(boto3, answer, skip=()):
    """What SageMaker would do for each transform job: one output line per input line, the input joined
    with the model's answer (`JoinSource: Input`), shuffled to prove answers are matched by id."""
    jobs = []

    def run(params, **kwargs):
        s3 = boto3.client("s3")
        src = params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, _, key = src[5:].partition("/")
        lines = [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]
        jobs.append({"params": params, "records": lines})
        out = [{**line, "SageMakerOutput": [{"generated_text": answer(line["body"]["inputs"])}]}
               for line in reversed(lines) if line["id"] not in skip]
        dest = params["TransformOutput"]["S3OutputPath"] + "/" + key.rsplit("/", 1)[1] + ".out"
        bucket, _, key = dest[5:].partition("/")
        s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(o) + "\n" for o in out).encode())

    boto3.DEFAULT_SESSION.events.register("provide-client-params.sagemaker.CreateTransformJob", run)
    return jobs


def model_entry(provider: str = "huggingface") -> dict:
    model_id, version = ("tiiuae/falcon-7b", "*") if provider == "huggingface" else ("llm-eval-tiny", "1.0.0")
    return {"name": "bt", "provider": provider, "model_id": model_id, "model_version": version,
            "endpoint_name": "llm-eval-bt", "region": "us-east-1", "pipeline": "p", "creates_endpoint": True,
            "deployment": {"instance_type": "ml.g4dn.xlarge", "num_instances": 2, "image_uri": "tgi:1"},
            "invoke": {"output": "[0].generated_text", "content_template": "PROMPT_PLACEHOLDER",
                       "prompt_template": "Q: $model_input", "invocation": "batch_transform"}, "finetune": None}


@pytest.mark.parametrize("provider", ["huggingface", "jumpstart"])
def test_records_go_through_one_transform_job_and_come_back_by_id(aws, tmp_path, provider, request):
    from steps.cleanup import cleanup
    from steps.deploy import deploy
    from steps.evaluate import evaluate

    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:6]]
    answers = {f"Q: {r['question']}": r["answer"].split("<OR>")[0] for r in rows}
    jobs = the_service(aws, lambda prompt: answers[prompt], skip={"r00004"})
    root = "s3://runs/p/runs/{execution_id}"
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i:05d}", "model_input": r["question"],
                                        "target_output": r["answer"]}) + "\n" for i, r in enumerate(rows)))
    from lib import storage

    storage.upload_file(data, "s3://runs/p/runs/e1/dataset/processed.jsonl")
    dataset = {"status": "succeeded", "uri": "s3://runs/p/runs/e1/dataset/processed.jsonl", "dataset_name": "t"}
    if provider == "jumpstart":
        request.getfixturevalue("jumpstart_catalogue")
    model = model_entry(provider)
    sm = aws.client("sagemaker")

    deployment = deploy(model, None, root, "e1")
    assert deployment["status"] == "succeeded" and [c["type"] for c in deployment["created"]] == ["model"]
    assert sm.list_endpoints()["Endpoints"] == []  # no endpoint: nothing billed by the hour while asking
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    container = sm.describe_model(ModelName="llm-eval-bt")["PrimaryContainer"]
    assert deployment["image_uri"] == container["Image"] == ("tgi:1" if provider == "huggingface" else JUMPSTART_IMAGE)
    if provider == "jumpstart":  # the catalogue's artifact and environment, as JumpStart would deploy it
        source = deployment["model_data_source"]["S3DataSource"]  # the SDK's way of naming an artifact
        assert source["S3Uri"] == "s3://jumpstart-cache-prod-us-east-1/llm-eval-tiny/artifacts/model.tar.gz"
        assert container["Environment"]["SM_NUM_GPUS"] == "1"
    arn = sm.describe_model(ModelName="llm-eval-bt")["ModelArn"]
    assert {t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} >= {"llm-eval-pipelines:pipeline"}

    algorithms = [{"name": "FactualKnowledge", "module": "fmeval.eval_algorithms.factual_knowledge",
                   "config_class": "FactualKnowledgeConfig", "eval_name": "factual_knowledge",
                   "options": {"target_output_delimiter": "<OR>"}, "score_names": ["factual_knowledge"]}]
    result = evaluate(model, deployment, dataset, algorithms, root, None, "e1")
    assert len(jobs) == 1 and len(jobs[0]["records"]) == 6
    params = jobs[0]["params"]
    assert params["ModelName"] == "llm-eval-bt" and params["TransformResources"] == {
        "InstanceType": "ml.g4dn.xlarge", "InstanceCount": 2}
    assert params["DataProcessing"] == {"InputFilter": "$.body", "JoinSource": "Input", "OutputFilter": "$"}
    assert {t["Key"] for t in params["Tags"]} >= {"llm-eval-pipelines:pipeline", "llm-eval-pipelines:execution"}
    # five answered (matched by id although the lines came back reversed), one without an answer line
    assert result["records"] == 6 and result["errors"] == 1 and result["invocations"] == 6
    assert result["scores"]["factual_knowledge"]["factual_knowledge"] == pytest.approx(5 / 6)
    out = storage.read_jsonl("s3://runs/p/runs/e1/models/bt/outputs.jsonl")
    assert [r["id"] for r in out] == [f"r{i:05d}" for i in range(6)]
    assert out[4]["error"] == "the batch transform job wrote no answer for it"
    assert out[2]["output"] == rows[2]["answer"].split("<OR>")[0]

    # a rerun into the same run asks only the record that failed, in a job of its own
    again = evaluate(model, deployment, dataset, algorithms, root, None, "e1")
    assert len(jobs) == 2 and [r["id"] for r in jobs[1]["records"]] == ["r00004"]
    assert jobs[1]["params"]["TransformJobName"] != params["TransformJobName"]  # SageMaker never reuses one
    assert again["errors"] == 1 and again["invocations"] == 1

    done = cleanup(model, deployment, result)
    assert done["deleted"] == ["model:llm-eval-bt"] and sm.list_models()["Models"] == []


def test_a_fine_tuned_jumpstart_model_runs_its_own_artifact_on_the_base_models_image(aws, jumpstart_catalogue):
    from steps.cleanup import cleanup
    from steps.deploy import deploy

    tuned = {"status": "succeeded", "training_job_name": "ft-1", "model_data_url": "s3://runs/ft-1/output/model.tar.gz"}
    model = {**model_entry("jumpstart"), "finetune": {"train_data_uri": "s3://runs/train.jsonl"}}
    model["deployment"] = {"instance_type": "ml.g4dn.12xlarge", "num_instances": 1}
    deployment = deploy(model, tuned, "s3://runs/p/runs/{execution_id}", "e1")
    sm = aws.client("sagemaker")
    container = sm.describe_model(ModelName="llm-eval-bt")["PrimaryContainer"]
    assert deployment["status"] == "succeeded"
    assert deployment["model_data_source"]["S3DataSource"]["S3Uri"] == tuned["model_data_url"]
    # the container JumpStart gives the instance type the job runs on, not its default one
    assert container["Image"] == JUMPSTART_IMAGE and container["Environment"]["SM_NUM_GPUS"] == "4"
    assert sm.list_endpoints()["Endpoints"] == []

    # a second deploy under the same name refuses rather than run someone else's model, and leaves it
    again = deploy(model, tuned, "s3://runs/p/runs/{execution_id}", "e2")
    assert again["status"] == "failed" and "already exists (this deploy did not make it)" in again["error"]
    assert again["created"] == [] and len(sm.list_models()["Models"]) == 1
    assert cleanup(model, deployment, {})["deleted"] == ["model:llm-eval-bt"]


def write_config(folder, records: int, **model) -> dict:
    write_dataset(folder / "eval.jsonl", records)
    config = {"pipeline": {"name": "bt"},
              "dataset": {"dataset_name": "t", "input_data_location": "eval.jsonl", "model_input_key": "question",
                          "target_output_key": "answer"},
              "models": [{"name": "bt", "provider": "huggingface", "model_id": "tiiuae/falcon-7b",
                          "evaluation_config": {"invocation": "batch_transform"}, **model}],
              "algorithms": [{"algorithm": "FactualKnowledge"}]}
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    return config


def test_plan_prices_the_job_against_an_endpoint_and_validate_refuses_what_cannot(tmp_path, capsys):
    from pipelines.build_pipeline import main

    config = write_config(tmp_path, 40, deployment_config={"image_uri": "tgi:1"})
    assert main(["plan", "--config", str(tmp_path / "c.yaml"), "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)["cost"]["sagemaker"]["models"]["bt"]
    # ml.g5.2xlarge $1.515/h: 10 min of start-up + 40 records x 2 s / 4 in flight, for the job; an endpoint
    # also bills while the evaluate step's job and the cleanup step's job start (2 x 5 min)
    assert bt["parts"] == {"transform": pytest.approx(1.515 * (10 / 60 + 20 / 3600), abs=1e-4)}
    assert bt["endpoint_alternative_usd"] == pytest.approx(1.515 * (20 / 60 + 20 / 3600), abs=1e-4)
    assert main(["plan", "--config", str(tmp_path / "c.yaml")]) == 0
    assert "through a real-time endpoint: $0.51" in capsys.readouterr().out

    config["models"][0].update(provider="openai", endpoint_url="http://127.0.0.1:9/v1")
    del config["models"][0]["deployment_config"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["validate", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "models[0].evaluation_config.invocation" in err and "cannot run a batch transform" in err
    assert "huggingface" in err and "Traceback" not in err

    config["models"][0] = {"name": "bt", "provider": "huggingface", "model_id": "tiiuae/falcon-7b",
                           "evaluation_config": {"invocation": "batch_transform"}}
    config["algorithms"] = [{"algorithm": "ClassificationAccuracySemanticRobustness",
                             "config": {"valid_labels": ["a", "b"]}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["validate", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "call the model themselves" in capsys.readouterr().err

    # the default provider, JumpStart, runs one too
    config["models"][0] = {"name": "bt", "model_id": "huggingface-llm-falcon-7b-bf16",
                           "evaluation_config": {"invocation": "batch_transform"}}
    config["algorithms"] = [{"algorithm": "FactualKnowledge"}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan", "--config", str(tmp_path / "c.yaml"), "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)["cost"]["sagemaker"]["models"]["bt"]
    assert list(bt["parts"]) == ["transform"] and bt["endpoint_alternative_usd"] > bt["parts"]["transform"]


def test_a_local_run_without_a_bucket_for_the_job_is_refused_before_anything_starts(tmp_path, capsys):
    from pipelines.build_pipeline import main

    write_config(tmp_path, 3)
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump({"local": {"output_dir": str(tmp_path / "runs")}}))
    assert main(["run", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "set sagemaker.bucket" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing started
