"""The answer cache never mixes two models: the model identity in its key covers provider, endpoint,
URL, region, model version, container and model data (AWS through moto)."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import fake_aws

from lib.engine.cache import OutputCache, cache_key
from lib.engine.invoke import RetryPolicy, invoke_records
from lib.providers import get_provider

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
INVOKE = {"prompt_template": "Q: $model_input", "content_template": "PROMPT_PLACEHOLDER",
          "inference_parameters": {"max_new_tokens": 8}, "output": "[0].generated_text"}
FAST = RetryPolicy(max_retries=0)


@pytest.fixture
def aws(monkeypatch):
    fake_aws(monkeypatch, LLM_EVAL_ROLE_ARN=ROLE)
    with moto.mock_aws():
        import boto3

        yield boto3.client("sagemaker")


def existing_endpoint(sm, name: str, image: str = "tgi:1", model_data: str | None = None) -> None:
    container = {"Image": image, **({"ModelDataUrl": model_data} if model_data else {})}
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def model_entry(name: str, endpoint: str, provider: str = "huggingface") -> dict:
    return {"name": name, "provider": provider, "model_id": "tiiuae/falcon-7b", "model_version": "*",
            "endpoint_name": endpoint, "region": "us-east-1", "pipeline": "p",
            "deployment": {"instance_type": "ml.g4dn.xlarge", "num_instances": 1},
            "invoke": dict(INVOKE), "finetune": None, "cleanup_endpoint": False}


def deployed(model: dict) -> dict:
    """What the provider's deploy returns for an endpoint that exists (the reuse path, as in a run)."""
    return get_provider(model["provider"]).deploy(model, None, {"progress": lambda m: None, "created": []})


def queue_answers(texts: list[str]) -> None:
    """moto's sagemaker-runtime answers each new request with the next queued result. It remembers the
    answer to a request body whatever the endpoint (it does not read the endpoint name from the URL), so
    its memory is reset first (the endpoints described before stay in the deployments we hold)."""
    import requests

    requests.post("http://motoapi.amazonaws.com/moto-api/reset", timeout=10)
    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                  json={"results": [{"Body": json.dumps([{"generated_text": t}])} for t in texts]}, timeout=10)


@pytest.mark.parametrize("provider", ["huggingface", "jumpstart"])
def test_same_model_id_on_two_endpoints_has_two_identities(aws, provider):
    existing_endpoint(aws, "endpoint-a")
    existing_endpoint(aws, "endpoint-b")  # same image, same model id: only the endpoint differs
    a, b = model_entry("a", "endpoint-a", provider), model_entry("b", "endpoint-b", provider)
    da, db = deployed(a), deployed(b)
    impl = get_provider(provider)
    ida, idb = impl.identity(a, da), impl.identity(b, db)
    assert ida != idb
    assert json.loads(ida)["endpoint_name"] == "endpoint-a" and json.loads(ida)["image_uri"] == "tgi:1"
    assert cache_key(ida, INVOKE, "Q: x") != cache_key(idb, INVOKE, "Q: x")
    # and the same model deployed the same way keeps its identity (the cache still serves reruns)
    assert impl.identity(a, deployed(a)) == ida


def test_the_same_endpoint_name_with_another_container_or_model_data_is_another_model(aws):
    existing_endpoint(aws, "ep-1", image="tgi:1", model_data="s3://b/one.tar.gz")
    model = model_entry("a", "ep-1")
    before = get_provider("huggingface").identity(model, deployed(model))
    aws.delete_endpoint(EndpointName="ep-1")
    aws.delete_endpoint_config(EndpointConfigName="ep-1")
    aws.delete_model(ModelName="ep-1")
    existing_endpoint(aws, "ep-1", image="tgi:1", model_data="s3://b/two.tar.gz")  # redeployed, other weights
    assert get_provider("huggingface").identity(model, deployed(model)) != before


BASE_MODEL = {"name": "m", "provider": "huggingface", "model_id": "tiiuae/falcon-7b", "model_version": "*",
              "endpoint_name": "ep", "region": "us-east-1", "endpoint_url": None,
              "deployment": {"instance_type": "ml.g5.2xlarge", "num_instances": 1}}
BASE_DEPLOYMENT = {"endpoint_name": "ep", "image_uri": "tgi:1", "model_data_url": None, "artifact_identity": None}


@pytest.mark.parametrize("where,key,value", [
    ("model", "region", "eu-west-1"),
    ("model", "model_id", "tiiuae/falcon-40b"),
    ("model", "model_version", "2.0.1"),
    ("model", "endpoint_url", "https://models.example.com/v1"),
    ("deployment", "endpoint_name", "other-ep"),
    ("deployment", "image_uri", "tgi:2"),
    ("deployment", "model_data_url", "s3://bucket/finetuned.tar.gz"),
    ("deployment", "artifact_identity", "training-job:ft-1"),
])
def test_each_thing_that_makes_two_models_differ_changes_the_identity(where, key, value):
    provider = get_provider("huggingface")
    model, deployment = copy.deepcopy(BASE_MODEL), dict(BASE_DEPLOYMENT)
    (model if where == "model" else deployment)[key] = value
    assert provider.identity(model, deployment) != provider.identity(BASE_MODEL, BASE_DEPLOYMENT)


def test_the_provider_is_part_of_the_identity():
    assert get_provider("jumpstart").identity(BASE_MODEL, BASE_DEPLOYMENT) != \
        get_provider("huggingface").identity(BASE_MODEL, BASE_DEPLOYMENT)
    openai = {**BASE_MODEL, "provider": "openai", "endpoint_url": "http://127.0.0.1:8000/v1"}
    other = {**openai, "endpoint_url": "http://127.0.0.1:8001/v1"}
    assert get_provider("openai").identity(openai, {}) != get_provider("openai").identity(other, {})


def test_a_local_server_port_is_not_part_of_the_identity():
    """A local model is served on a new port each run: its cached answers must still be found."""
    model = {**BASE_MODEL, "provider": "local", "model_id": "smollm2-135m-instruct", "endpoint_name": "llm-eval-m"}
    del model["endpoint_url"]
    first = {"endpoint_url": "http://127.0.0.1:40001", "endpoint_id": "local:m:40001", "artifact_identity": ""}
    second = {"endpoint_url": "http://127.0.0.1:40002", "endpoint_id": "local:m:40002", "artifact_identity": ""}
    local = get_provider("local")
    assert local.identity(model, first) == local.identity(model, second)
    assert local.identity(model, {**first, "artifact_identity": "finetuned:abc"}) != local.identity(model, first)


def test_two_endpoints_with_one_model_id_do_not_share_cached_answers(aws, tmp_path):
    """Through the engine, the real SageMaker invoker and a real OutputCache: B is asked, not served A's answers."""
    existing_endpoint(aws, "endpoint-a")
    existing_endpoint(aws, "endpoint-b")
    a, b = model_entry("a", "endpoint-a"), model_entry("b", "endpoint-b")
    da, db = deployed(a), deployed(b)
    provider = get_provider("huggingface")
    records = [{"id": f"r{i}", "model_input": f"question {i}", "target_output": "x"} for i in range(3)]
    cache = OutputCache(str(tmp_path / "cache"))

    def run(model, deployment, outputs):
        return invoke_records(records, invoke=INVOKE, invoker=provider.invoker(model, deployment),
                              identity=provider.identity(model, deployment), outputs_uri=str(tmp_path / outputs),
                              cache=cache, max_concurrency=1, policy=FAST)

    queue_answers(["from a"] * 3)
    rows_a, stats_a = run(a, da, "a.jsonl")
    assert [r["output"] for r in rows_a] == ["from a"] * 3 and stats_a.invocations == 3

    queue_answers(["from b"] * 3)
    rows_b, stats_b = run(b, db, "b.jsonl")
    assert [r["output"] for r in rows_b] == ["from b"] * 3, "endpoint-b was served endpoint-a's answers"
    assert stats_b.cached == 0 and stats_b.invocations == 3

    # the cache does work: A asked again (another output file, so no resume) is served from it
    rows_again, stats_again = run(a, da, "a-again.jsonl")
    assert stats_again.cached == 3 and [r["output"] for r in rows_again] == ["from a"] * 3
