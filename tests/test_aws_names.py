"""What the SageMaker pipeline is made of, where the AWS sample differs from what we did before: model names
with underscores (mapped onto AWS's name rules), evaluation on a CPU instance, warm pools per step kind."""

from __future__ import annotations

import json

import pytest
from conftest import base_config

from lib.config import load_config
from lib.plan import build_plan
from pipelines.build_pipeline import main
from pipelines.sagemaker_executor import step_compute


def test_underscored_model_names_are_mapped_onto_aws_names(write_config, capsys):
    data = base_config(2)
    data["models"][0]["name"] = "llama2_7b_chat"
    data["models"][1]["name"] = "falcon_7b"
    data["models"][1]["endpoint_name"] = "my-falcon"  # an endpoint name given is used as it is
    cfg = load_config(write_config(data))
    assert [m["name"] for m in cfg.models] == ["llama2_7b_chat", "falcon_7b"]  # as written, in our own files
    assert [m["endpoint_name"] for m in cfg.models] == ["llm-eval-llama2-7b-chat", "my-falcon"]
    plan = build_plan(cfg)
    names = [s.name for s in plan.steps]
    assert "deploy-llama2-7b-chat" in names and "evaluate-falcon-7b" in names
    assert all("_" not in n for n in names)
    assert plan.step("evaluate-llama2-7b-chat").model == "llama2_7b_chat"  # the result keeps its name
    assert plan.step("select").depends_on == ["preprocess", "evaluate-llama2-7b-chat", "evaluate-falcon-7b"]
    assert main(["plan", "--config", str(write_config(data))]) == 0
    out = capsys.readouterr().out
    assert ("names on AWS: llama2_7b_chat -> llama2-7b-chat (steps *-llama2-7b-chat, tags, endpoint "
            "llm-eval-llama2-7b-chat)") in out
    assert "names on AWS: falcon_7b -> falcon-7b (steps *-falcon-7b, tags, endpoint my-falcon)" in out
    assert main(["plan", "--config", str(write_config(data)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["aws_names"] == {"llama2_7b_chat": "llama2-7b-chat",
                                                               "falcon_7b": "falcon-7b"}


def test_a_step_reports_under_the_plans_step_name(tmp_path, capsys):
    """A step's own name for itself (its progress lines, what an interrupt finds in progress) is the plan's."""
    from steps.evaluate import evaluate

    model = {"name": "my_model", "provider": "openai", "model_id": "m", "invoke": {}}
    result = evaluate(model, {"status": "succeeded"}, {"status": "succeeded", "uri": str(tmp_path / "gone.jsonl")},
                      [], str(tmp_path), execution_id="e1")
    assert result["model"] == "my_model" and result["status"] == "failed"
    assert "evaluate-my-model" in capsys.readouterr().err


@pytest.mark.parametrize("names,expected", [
    (["a_b", "a-b"], "the model name 'a-b' and 'a_b' of models[0] both become 'a-b' in AWS names"),
    (["A_b", "a-B"], "both become 'a-B' in AWS names"),
    (["model_", "x"], "starting and ending with a letter or digit"),
    (["mo.del", "x"], "no dots or spaces"),
])
def test_names_that_cannot_be_mapped_or_collide_are_refused(write_config, capsys, names, expected):
    data = base_config(2)
    for model, name in zip(data["models"], names, strict=True):
        model["name"] = name
    assert main(["validate", "--config", str(write_config(data))]) == 2
    err = capsys.readouterr().err
    assert "models[" in err and expected in err and len(err.strip().splitlines()) == 1


def test_evaluation_runs_on_a_cpu_instance_with_the_samples_warm_pools(write_config):
    data = base_config(1)
    data["models"][0]["finetuning"] = {"train_data_path": "eval.jsonl"}
    config = write_config(data)
    plan = build_plan(load_config(config))
    settings = load_config(config).settings
    assert step_compute(plan.step("evaluate-model-0"), settings) == {
        "instance_type": "ml.m5.xlarge", "keep_alive_period_in_seconds": 1200}
    assert step_compute(plan.step("finetune-model-0"), settings) == {
        "instance_type": "ml.m5.xlarge", "training_instance_type": "ml.g5.12xlarge",
        "keep_alive_period_in_seconds": 2400}
    assert step_compute(plan.step("select"), settings) == {"instance_type": "ml.m5.xlarge"}


@pytest.mark.parametrize("keep_alive,expected", [
    (600, {"finetune": 600, "evaluate": 600, "select": 0}),  # one number: every kind that keeps a pool
    ({"evaluate": 300}, {"finetune": 2400, "evaluate": 300, "select": 0}),
    ({"finetune": 0, "select": 60}, {"finetune": 0, "evaluate": 1200, "select": 60}),
])
def test_warm_pools_are_configurable_per_step_kind(write_config, keep_alive, expected):
    data = base_config(1)
    data["models"][0]["finetuning"] = {"train_data_path": "eval.jsonl"}
    config = write_config(data)
    settings = write_config({"sagemaker": {"keep_alive_period_in_seconds": keep_alive}}, name="pipeline_config.yaml")
    cfg = load_config(config, pipeline_config=settings)
    plan = build_plan(cfg)
    got = {kind: step_compute(plan.step(name), cfg.settings).get("keep_alive_period_in_seconds", 0)
           for kind, name in (("finetune", "finetune-model-0"), ("evaluate", "evaluate-model-0"), ("select", "select"))}
    assert got == expected


@pytest.mark.parametrize("keep_alive,expected", [
    ({"evalute": 60}, "unknown key 'evalute' (did you mean 'evaluate'?)"),
    ({"evaluate": 3601}, "sagemaker.keep_alive_period_in_seconds.evaluate: must be at most 3600"),
    ("long", "must be a whole number or a mapping"),
])
def test_bad_warm_pools_are_refused(write_config, capsys, keep_alive, expected):
    config = write_config(base_config(1))
    settings = write_config({"sagemaker": {"keep_alive_period_in_seconds": keep_alive}}, name="pipeline_config.yaml")
    assert main(["validate", "--config", str(config), "--pipeline-config", str(settings)]) == 2
    err = capsys.readouterr().err
    assert "pipeline_config.yaml" in err and expected in err, err
