"""The AWS sample's own `sm_pipelines/` folder (aws-samples/fm-evaluation-at-scale), used as its users
use it: cd into a copy, point the CLI at each of its four configs, unchanged, with the data in a local
folder or under the sample's `s3://<bucket>/llm-evaluation-at-scale-example`. The folder's
`pipeline_config.yaml` is one of its evaluation configs and its `config.yaml` is the SageMaker SDK's
defaults file; both are read for what they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import SHARED, fake_aws

from lib.config import load_config
from pipelines.build_pipeline import main

moto = pytest.importorskip("moto")

SAMPLE = SHARED / "data" / "fm-evaluation-at-scale"
pytestmark = pytest.mark.skipif(not (SAMPLE / "sm_pipelines").is_dir(),
                                reason="../shared (the AWS sample's files) is not beside this clone")

# config -> (pipeline name, models, fine-tuned models)
CONFIGS = {
    "pipeline_config.yaml": ("llm-evaluation-single-model", ["llama2-7b"], []),
    "pipeline_finetuning_config.yaml": ("llm-evaluation-single-model-finetuning", ["llama2-7b-finetuned"],
                                        ["llama2-7b-finetuned"]),
    "pipeline_scale_config.yaml": ("llm-evaluation-multi-models", ["llama2-7b-f", "falcon-7b"], []),
    "pipeline_scale_hybrid_config.yaml": ("llm-evaluation-multi-models-hybrid",
                                          ["llama2-7b-f", "falcon-7b", "llama2-7b-finetuned"],
                                          ["llama2-7b-finetuned"]),
}
S3_DATA = "s3://sample-bucket/llm-evaluation-at-scale-example"  # the sample's form
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-20240101T000000"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-eval-pipelines:1"


@pytest.fixture
def sample_folder(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A copy of sm_pipelines/ as the working directory, and the data folder the sample's notebook
    prepares (the evaluation file, train_dataset/ and val_dataset/)."""
    folder = tmp_path / "sm_pipelines"
    shutil.copytree(SAMPLE / "sm_pipelines", folder)
    data = tmp_path / "data"
    (data / "train_dataset").mkdir(parents=True)
    (data / "val_dataset").mkdir()
    shutil.copy(SAMPLE / "evaluation_dataset_trivia.jsonl", data)
    shutil.copy(SAMPLE / "train_dataset_trivia.jsonl", data / "train_dataset")
    shutil.copy(SAMPLE / "validation_dataset_trivia.jsonl", data / "val_dataset")
    monkeypatch.chdir(folder)
    # no AWS call before a config validates: any would fail loudly here
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    fake_aws(monkeypatch)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return folder, data


@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_sample_config_validates_plans_and_becomes_a_definition_unchanged(sample_folder, config, capsys,
                                                                           monkeypatch):
    folder, data = sample_folder
    pipeline, models, finetuned = CONFIGS[config]
    assert (folder / config).read_bytes() == (SAMPLE / "sm_pipelines" / config).read_bytes()
    for data_path in (str(data), S3_DATA):
        args = ["--config", config, "--input-data-path", data_path]
        assert main(["validate", *args]) == 0
        out, err = capsys.readouterr()
        assert f"valid — pipeline '{pipeline}'" in out and "settings from config.yaml (SageMaker defaults)" in out
        # the sibling pipeline_config.yaml is the sample's evaluation config: said in one line, not read as settings
        notes = [line for line in err.splitlines() if "pipeline_config.yaml is an evaluation config" in line]
        assert len(notes) == 1
        assert "RoleArn is still a placeholder" in err  # the sample ships `arn:aws:iam::<...>:role/...`

        assert main(["plan", *args, "--json"]) == 0
        plan = json.loads(capsys.readouterr().out)
        names = [s["name"] for s in plan["steps"]]
        assert [n for n in names if n.startswith("evaluate-")] == [f"evaluate-{m}" for m in models]
        assert [n for n in names if n.startswith("finetune-")] == [f"finetune-{m}" for m in finetuned]
        assert plan["settings_sources"] == {"sagemaker.step_instance_type": ["config.yaml (SageMaker defaults)"]}
        dataset = next(s for s in plan["steps"] if s["name"] == "preprocess")["args"]["dataset"]["uri"]
        expected = (f"{S3_DATA}/evaluation_dataset_trivia.jsonl" if data_path == S3_DATA
                    else str(data / "evaluation_dataset_trivia.jsonl"))
        assert dataset == expected
        root = S3_DATA if data_path == S3_DATA else str(data)
        for model in load_config(config, input_data_path=data_path).models:  # the sample's data folders
            if model["finetune"]:
                assert (model["finetune"]["train_data_uri"], model["finetune"]["validation_data_uri"]) == (
                    f"{root}/train_dataset", f"{root}/val_dataset")

    # To build a definition the user fills in the role, as the sample's config.yaml asks, and names our image
    # in their own settings file (outside the folder: its pipeline_config.yaml is an evaluation config).
    defaults = folder / "config.yaml"
    defaults.write_text(defaults.read_text().replace(
        "arn:aws:iam::<...>:role/service-role/AmazonSageMaker-ExecutionRole-<...>", ROLE))
    settings = folder.parent / "settings.yaml"
    settings.write_text(yaml.safe_dump({"sagemaker": {"image_uri": IMAGE, "bucket": "sample-bucket",
                                                      "region": "us-east-1"}}))
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="sample-bucket")
        for data_path in (str(data), S3_DATA):
            out_file = folder.parent / "definition.json"
            assert main(["definition", "--config", config, "--input-data-path", data_path,
                         "--pipeline-config", str(settings), "--out", str(out_file)]) == 0
            capsys.readouterr()
            definition = json.loads(out_file.read_text())
            params = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
            # the defaults file's instance type for every step, evaluation included: it only calls an endpoint
            assert params["EvaluateInstanceType"] == params["PreprocessInstanceType"] == "ml.m5.xlarge"
            assert params["DatasetUri"] == (f"{S3_DATA}/evaluation_dataset_trivia.jsonl" if data_path == S3_DATA else
                                            f"s3://sample-bucket/llm-eval-pipelines/{pipeline}/inputs/dataset/"
                                            "evaluation_dataset_trivia.jsonl")
            steps = {s["Name"]: s["Arguments"] for s in definition["Steps"]}
            assert {f"evaluate-{m}" for m in models} | {f"finetune-{m}" for m in finetuned} <= set(steps)
            for name, job in steps.items():
                assert job["RoleArn"] == ROLE  # from the sample's config.yaml
                assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE  # from our settings file
                kind = name.split("-")[0]
                # the sample's warm pools: 2400 s for fine-tuning, 1200 s for evaluation
                assert job["ResourceConfig"]["KeepAlivePeriodInSeconds"] == {"finetune": 2400,
                                                                             "evaluate": 1200}.get(kind, 0)
