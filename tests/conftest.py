from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))


def fake_aws(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """Credentials and a region for moto (never a real account's), and no profile; ``extra``: more env."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", **extra}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    """An S3 client under moto, with the bucket "runs"."""
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="runs")
        yield client


def write_dataset(path: Path, n: int = 5) -> Path:
    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:n]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def base_config(n_models: int = 1) -> dict:
    return {
        "pipeline": {"name": "test-pipeline"},
        "dataset": {
            "dataset_name": "trivia",
            "input_data_location": "eval.jsonl",
            "dataset_mime_type": "jsonlines",
            "model_input_key": "question",
            "target_output_key": "answer",
        },
        "models": [
            {
                "name": f"model-{i}",
                "model_id": "huggingface-llm-falcon-7b-bf16",
                "model_version": "*",
                "deployment_config": {"instance_type": "ml.g5.2xlarge", "num_instances": 1},
                "evaluation_config": {
                    "output": "[0].generated_text",
                    "content_template": "PROMPT_PLACEHOLDER",
                    "inference_parameters": {"max_new_tokens": 20},
                    "prompt_template": "$model_input",
                },
            }
            for i in range(n_models)
        ],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
    }


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "eval.jsonl")
    return tmp_path


@pytest.fixture
def write_config(config_dir: Path):
    def write(data: dict | str, name: str = "config.yaml") -> Path:
        path = config_dir / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(autouse=True)
def _unstopped():
    """Each test starts with the run-stopping flag down (a test that interrupts a run raises it)."""
    from lib.run import interrupt

    interrupt.reset()
    yield
    interrupt.reset()


@pytest.fixture(autouse=True)
def _no_sagemaker_defaults_from_this_machine(tmp_path_factory, monkeypatch):
    """The SageMaker SDK's defaults files of whoever runs the tests (~/.config/sagemaker/config.yaml, or
    SAGEMAKER_USER_CONFIG_OVERRIDE) are settings too (lib/config/sagemaker_defaults.py): not in a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "no-xdg-config"))
    monkeypatch.delenv("SAGEMAKER_USER_CONFIG_OVERRIDE", raising=False)


JUMPSTART_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.1.1-tgi2.0.0-gpu"


@pytest.fixture
def jumpstart_catalogue(tmp_path, monkeypatch):
    """A JumpStart catalogue of one model on this disk, read by the SageMaker SDK in place of the hub's
    (its `AWS_JUMPSTART_*_LOCAL_ROOT_DIR_OVERRIDE` variables): the real lookup of image, artifact and
    environment runs, offline."""
    from sagemaker.jumpstart.accessors import JumpStartModelsAccessor

    root = tmp_path / "jumpstart"
    key = "community_models/llm-eval-tiny/specs_v1.0.0.json"
    (root / "specs" / key).parent.mkdir(parents=True)
    (root / "models_manifest.json").write_text(json.dumps([{"model_id": "llm-eval-tiny", "version": "1.0.0",
                                                             "min_version": "2.0.0", "spec_key": key}]))
    (root / "specs" / key).write_text(json.dumps({
        "model_id": "llm-eval-tiny", "version": "1.0.0", "min_sdk_version": "2.0.0", "training_supported": False,
        "hosting_prepacked_artifact_key": "llm-eval-tiny/artifacts/model.tar.gz", "hosting_use_script_uri": False,
        "hosting_instance_type_variants": {
            "regional_aliases": {"us-east-1": {"tgi": JUMPSTART_IMAGE}},
            "variants": {"g4dn": {"regional_properties": {"image_uri": "$tgi"}},
                         "g5": {"regional_properties": {"image_uri": "$tgi"}},
                         # a bigger instance of a family: its own environment, as JumpStart's LLMs have
                         "ml.g4dn.12xlarge": {"properties": {"environment_variables": {"SM_NUM_GPUS": "4"}}}}},
        "inference_environment_variables": [{"name": "SM_NUM_GPUS", "type": "text", "default": "1",
                                             "scope": "container", "required_for_model_class": True}],
        "predictor_specs": {"supported_content_types": ["application/json"],
                            "supported_accept_types": ["application/json"],
                            "default_content_type": "application/json", "default_accept_type": "application/json"},
        "default_inference_instance_type": "ml.g4dn.xlarge",
        "supported_inference_instance_types": ["ml.g4dn.xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge"]}))
    monkeypatch.setenv("AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE", str(root))
    monkeypatch.setenv("AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE", str(root / "specs"))
    JumpStartModelsAccessor.reset_cache()
    yield
    JumpStartModelsAccessor.reset_cache()
