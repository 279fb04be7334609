"""The plan for 1 model, the AWS sample's hybrid layout, and 50 models; the CLI's plan output."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, SHARED, base_config

from lib.config import load_config
from lib.plan import KINDS, build_plan
from pipelines.build_pipeline import main

STEP_NAME = re.compile(r"^(preprocess|select|gate|register|(finetune|deploy|evaluate|cleanup)-[A-Za-z0-9-]+)$")


def check_invariants(plan) -> None:
    names = [s.name for s in plan.steps]
    assert len(names) == len(set(names))
    position = {n: i for i, n in enumerate(names)}
    for s in plan.steps:
        assert STEP_NAME.match(s.name) and s.kind in KINDS
        assert all(position[d] < position[s.name] for d in s.depends_on), "topological order"
        assert len(s.name) <= 64


def test_plan_one_model(write_config):
    plan = build_plan(load_config(write_config(base_config(1))))
    check_invariants(plan)
    assert [s.name for s in plan.steps] == [
        "preprocess", "deploy-model-0", "evaluate-model-0", "select", "gate", "register", "cleanup-model-0"]
    assert plan.step("evaluate-model-0").depends_on == ["preprocess", "deploy-model-0"]
    # cleanup waits for its own model's deploy and evaluation only: select or register failing
    # (a SageMaker step after a failed one never runs) cannot keep the endpoint up
    assert plan.step("cleanup-model-0").depends_on == ["deploy-model-0", "evaluate-model-0"]
    # compute is a hint each executor maps: SageMaker gives evaluate a warm pool of the configured length
    assert plan.step("evaluate-model-0").compute == {"warm_pool": True}
    from pipelines.sagemaker_executor import step_compute

    settings = load_config(write_config(base_config(1))).settings
    # evaluation only calls the endpoint: a CPU instance, and the sample's 1200 s warm pool
    assert step_compute(plan.step("evaluate-model-0"), settings) == {
        "instance_type": "ml.m5.xlarge", "keep_alive_period_in_seconds": 1200}


@pytest.fixture
def sample_data(tmp_path: Path) -> Path:
    """The folder the sample's notebook prepares: eval file plus train/validation folders."""
    src = SHARED / "data" / "fm-evaluation-at-scale"
    data = tmp_path / "data"
    (data / "train_dataset").mkdir(parents=True)
    (data / "val_dataset").mkdir()
    if src.is_dir():
        shutil.copy(src / "evaluation_dataset_trivia.jsonl", data)
        shutil.copy(src / "train_dataset_trivia.jsonl", data / "train_dataset")
        shutil.copy(src / "validation_dataset_trivia.jsonl", data / "val_dataset")
    else:  # a user's clone: the project's own data in the sample's file names
        shutil.copy(ROOT / "data" / "trivia_eval.jsonl", data / "evaluation_dataset_trivia.jsonl")
        shutil.copy(ROOT / "data" / "trivia_train.jsonl", data / "train_dataset")
        shutil.copy(ROOT / "data" / "trivia_validation.jsonl", data / "val_dataset")
    return data


def test_plan_sample_hybrid_layout(sample_data):
    cfg = load_config(ROOT / "examples" / "sample_hybrid_config.yaml", input_data_path=str(sample_data))
    assert [m["provider"] for m in cfg.models] == ["jumpstart"] * 3
    assert cfg.models[0]["invoke"]["prompt_template"] == "$model_input"
    assert cfg.models[0]["invoke"]["custom_attributes"] == "accept_eula=true"
    plan = build_plan(cfg)
    check_invariants(plan)
    ft = plan.step("finetune-llama2-7b-finetuned")
    # the step only starts the training job, which runs on the model's instance type
    assert ft.compute["training_instance_type"] == "ml.g5.12xlarge"
    from pipelines.sagemaker_executor import step_compute

    assert step_compute(ft, cfg.settings)["instance_type"] == "ml.m5.xlarge"
    assert plan.step("deploy-llama2-7b-finetuned").depends_on == ["finetune-llama2-7b-finetuned"]
    assert "finetune-falcon-7b" not in [s.name for s in plan.steps]
    assert plan.step("select").depends_on == [  # the dataset (its hash), then every model's evaluation
        "preprocess", "evaluate-llama2-7b-chat", "evaluate-falcon-7b", "evaluate-llama2-7b-finetuned"]
    assert sorted(s.name for s in plan.steps if s.kind == "cleanup") == [
        "cleanup-falcon-7b", "cleanup-llama2-7b-chat", "cleanup-llama2-7b-finetuned"]
    levels = plan.levels()
    # the first stage holds preprocess, both plain deploys and the fine-tune: they run in parallel
    assert set(levels[0]) == {"preprocess", "deploy-llama2-7b-chat", "deploy-falcon-7b",
                              "finetune-llama2-7b-finetuned"}


def test_plan_fifty_models(write_config):
    plan = build_plan(load_config(write_config(base_config(50))))
    check_invariants(plan)
    assert len(plan.steps) == 1 + 50 * 3 + 3  # preprocess; deploy, evaluate, cleanup each; select, gate, register
    evaluates = [s for s in plan.steps if s.kind == "evaluate"]
    assert len(evaluates) == 50
    for s in evaluates:  # an evaluate waits only on its own deploy and the dataset
        assert s.depends_on == ["preprocess", f"deploy-{s.model}"]
    assert len(plan.step("select").varargs) == 50
    assert set(plan.levels()[1]) == {s.name for s in evaluates}


def test_existing_endpoint_is_not_cleaned_up(write_config):
    data = base_config(2)
    data["models"][1].update(provider="endpoint", endpoint_name="already-there")
    plan = build_plan(load_config(write_config(data)))
    assert "cleanup-model-0" in [s.name for s in plan.steps]
    assert "cleanup-model-1" not in [s.name for s in plan.steps]


def test_plan_cli_json(capsys, write_config):
    assert main(["plan", "--config", str(write_config(base_config(2))), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pipeline"] == "test-pipeline"
    assert data["levels"][0] == ["preprocess", "deploy-model-0", "deploy-model-1"]
    assert {"ref": "deploy-model-1"} in [s["args"].get("deployment") for s in data["steps"]]


def test_plan_cli_text(capsys, write_config):
    assert main(["plan", "--config", str(write_config(base_config(2)))]) == 0
    out = capsys.readouterr().out
    assert "stage 2: evaluate-model-0, evaluate-model-1" in out


def test_relative_paths_resolve_against_input_data_path(write_config, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "eval.jsonl").write_text((tmp_path / "eval.jsonl").read_text())
    cfg = load_config(write_config(base_config()), input_data_path=str(other))
    assert cfg.evaluation["dataset"]["uri"] == str(other / "eval.jsonl")


def test_default_config_validates():
    cfg = load_config(ROOT / "evaluation_config.yaml")
    assert [m["provider"] for m in cfg.models] == ["local"] * 3
    assert cfg.evaluation["selection"]["metric"] == "factual_knowledge"
    assert sum(1 for _ in open(ROOT / "data" / "trivia_eval.jsonl")) >= 60


def test_layering_lib_and_steps_never_import_pipelines():
    for folder in ("lib", "steps"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(from|import) pipelines", text, re.M), path


def test_sdk_and_fmeval_modules_are_imported_once_before_steps_run_in_parallel(write_config, tmp_path):
    import subprocess
    import sys

    data = base_config(2)  # JumpStart models: the SDK's serializers and fmeval would be imported by two threads
    plan = build_plan(load_config(write_config(data)))
    assert {"sagemaker.serializers", "sagemaker.jumpstart.model",
            "fmeval.eval_algorithms.factual_knowledge"} <= set(plan.preload)
    local = dict(base_config(1))
    local["models"] = [{"name": "m", "provider": "local", "model_id": "smollm2-135m-instruct"}]
    assert build_plan(load_config(write_config(local))).preload == []  # no SDK in play: no race, no wait
    # the executor imports them in its own thread before any worker starts
    code = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
from lib.plan import Plan
from pipelines.local_executor import run_plan
plan = Plan("p", [], preload=["preload_probe"])
run_plan(plan, {{"run_root": {str(tmp_path)!r}, "execution_id": "e"}})
print("preload_probe" in sys.modules)  # imported by the executor, not by this script
print(sys.modules["preload_probe"].IMPORTED_IN)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "MainThread"]
