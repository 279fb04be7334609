"""Every kind of bad config: exit code 2, one message naming the file and the YAML path."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from conftest import ROOT, base_config

from pipelines.build_pipeline import main


def run_validate(capsys, config, *extra: str) -> tuple[int, str]:
    code = main(["validate", "--config", str(config), *extra])
    out = capsys.readouterr()
    return code, out.err + out.out


def mutate(fn) -> dict:
    data = copy.deepcopy(base_config(2))
    fn(data)
    return data


# (id, mutation, text the message must contain — usually the YAML path)
CASES = [
    ("unknown-top-key", lambda d: d.update(modles=[]), "modles"),
    ("misspelt-key", lambda d: d["models"][0].update(nmae="x"), "did you mean 'name'"),
    ("misspelt-nested-key", lambda d: d["models"][1]["deployment_config"].update(instance_typ="ml.g5.xlarge"),
     "models[1].deployment_config.instance_typ"),
    ("wrong-type", lambda d: d["models"][0]["deployment_config"].update(num_instances="two"),
     "models[0].deployment_config.num_instances"),
    ("zero-instances", lambda d: d["models"][1]["deployment_config"].update(num_instances=0),
     "models[1].deployment_config.num_instances"),
    ("float-instances", lambda d: d["models"][1]["deployment_config"].update(num_instances=1.5),
     "models[1].deployment_config.num_instances"),
    ("bad-instance-type", lambda d: d["models"][0]["deployment_config"].update(instance_type="g5.2xlarge"),
     "ml.g5.2xlarge"),
    ("missing-required", lambda d: d["models"][0].pop("model_id"), "missing required key 'model_id'"),
    ("missing-dataset", lambda d: d.pop("dataset"), "missing required key 'dataset'"),
    ("empty-name", lambda d: d["models"][0].update(name=""), "models[0].name"),
    ("duplicate-name", lambda d: d["models"][1].update(name="model-0"), "models[1].name"),
    ("invalid-name", lambda d: d["models"][0].update(name="my_model.v1"), "models[0].name"),
    ("invalid-endpoint-name", lambda d: d["models"][0].update(endpoint_name="end_point"), "models[0].endpoint_name"),
    ("unknown-provider", lambda d: d["models"][0].update(provider="jumpstrat"), "did you mean 'jumpstart'"),
    ("unknown-algorithm", lambda d: d["algorithms"][0].update(algorithm="FactualKnowlege"),
     "did you mean 'FactualKnowledge'"),
    ("module-not-importing", lambda d: d["algorithms"].append({"algorithm": "Mine", "module": "no_such_mod.algos"}),
     "algorithms[1].module"),
    ("option-not-taken", lambda d: d["algorithms"].append({"algorithm": "Toxicity", "target_output_delimiter": "<OR>"}),
     "does not take the option 'target_output_delimiter'"),
    ("option-misspelt", lambda d: d["algorithms"][0].update(config={"logical_operater": "OR"}),
     "did you mean 'logical_operator'"),
    ("prompt-template", lambda d: d["models"][1]["evaluation_config"].update(prompt_template="Q: {question}"),
     "models[1].evaluation_config.prompt_template"),
    ("content-template", lambda d: d["models"][0]["evaluation_config"].update(content_template={"inputs": "x"}),
     "models[0].evaluation_config.content_template"),
    ("jmespath", lambda d: d["models"][0]["evaluation_config"].update(output="[0].generated_text["),
     "not a valid JMESPath"),
    ("dataset-missing-file", lambda d: d["dataset"].update(input_data_location="nope.jsonl"), "does not exist"),
    ("dataset-key", lambda d: d["dataset"].update(model_input_key="prompt"), "has no key 'prompt'"),
    ("mime-type", lambda d: d["dataset"].update(dataset_mime_type="csv"), "dataset.dataset_mime_type"),
    ("finetune-no-data", lambda d: d["models"][0].update(finetuning={"parameters": {"epoch": 1}}),
     "needs 'train_data_path'"),
    ("finetune-data-missing", lambda d: d["models"][0].update(finetuning={"train_data_path": "nowhere/"}),
     "models[0].finetuning.train_data_path"),
    ("selection-metric", lambda d: d.update(selection={"metric": "qa_accuracy"}), "selection.metric"),
    ("selection-score", lambda d: d.update(selection={"metric": "factual_knowledge.f1"}), "reports no score 'f1'"),
    ("selection-direction", lambda d: d.update(selection={"metric": "factual_knowledge", "direction": "up"}),
     "selection.direction"),
    ("no-models", lambda d: d.update(models=[]), "at least one"),
    ("local-model-missing", lambda d: d["models"][0].update(provider="local", model_id="models/nope.gguf"),
     "models[0].model_id"),
    ("endpoint-provider-without-name", lambda d: d["models"][0].update(provider="endpoint"), "endpoint_name"),
]


@pytest.mark.parametrize("case_id,fn,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_evaluation_config(capsys, write_config, case_id, fn, expected):
    path = write_config(mutate(fn))
    code, message = run_validate(capsys, path)
    assert code == 2
    assert str(path) in message
    assert expected in message
    assert "Traceback" not in message
    assert message.count("\n") == 1, "one paragraph"


RAW_CASES = [
    ("yaml-syntax", "pipeline:\n  name: x\nmodels: [\n", "line"),
    ("empty-file", "", "empty"),
    ("comments-only", "# nothing here\n", "empty"),
    ("top-level-list", "- a\n- b\n", "top level must be a mapping"),
    ("top-level-string", "hello\n", "top level must be a mapping"),
    ("python-tag", "pipeline: !!python/object/apply:os.system ['touch /tmp/pwned-llm-eval']\n", "is not allowed"),
    ("duplicate-key", "pipeline:\n  name: a\npipeline:\n  name: b\n", "duplicate key 'pipeline'"),
]


@pytest.mark.parametrize("case_id,text,expected", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_bad_yaml(capsys, write_config, case_id, text, expected, tmp_path):
    code, message = run_validate(capsys, write_config(text))
    assert code == 2
    assert expected in message
    assert "config.yaml" in message
    assert not (tmp_path / "pwned").exists()


def test_yaml_syntax_error_names_line(capsys, write_config):
    code, message = run_validate(capsys, write_config("pipeline:\n  name: x\n  bad: [1, 2\nother: 3\n"))
    assert code == 2 and "line 4" in message


def test_python_tag_is_never_constructed(capsys, write_config, tmp_path):
    marker = tmp_path / "constructed"
    text = f"pipeline: !!python/object/apply:os.system ['touch {marker}']\n"
    assert run_validate(capsys, write_config(text))[0] == 2
    assert not marker.exists()


def test_error_names_line_of_yaml_path(capsys, write_config):
    path = write_config(mutate(lambda d: d["models"][1]["deployment_config"].update(num_instances=0)))
    lines = path.read_text().splitlines()
    expected_line = next(i for i, line in enumerate(lines, 1) if "num_instances: 0" in line)
    _, message = run_validate(capsys, path)
    assert f"line {expected_line}" in message


def test_malformed_dataset_line_is_named(capsys, config_dir, write_config):
    data_path = config_dir / "eval.jsonl"
    data_path.write_text(data_path.read_text() + "{not json\n")
    code, message = run_validate(capsys, write_config(base_config()))
    assert code == 2 and "line 6" in message and "dataset.input_data_location" in message


PIPELINE_CASES = [
    ("role", {"sagemaker": {"role_arn": "MySageMakerRole"}}, "sagemaker.role_arn"),
    ("schedule", {"sagemaker": {"schedule": "every monday"}}, "sagemaker.schedule"),
    ("cron-both-days", {"sagemaker": {"schedule": "cron(0 6 * * MON *)"}}, "'?'"),
    ("rate-plural", {"sagemaker": {"schedule": "rate(1 days)"}}, "sagemaker.schedule"),
    ("step-instance", {"sagemaker": {"step_instance_type": "m5.large"}}, "sagemaker.step_instance_type"),
    ("unknown-key", {"sagemaker": {"keep_alive_period": 60}}, "did you mean 'keep_alive_period_in_seconds'"),
    ("workers", {"local": {"max_workers": 0}}, "local.max_workers"),
    ("bucket", {"sagemaker": {"bucket": "My_Bucket"}}, "sagemaker.bucket"),
]


@pytest.mark.parametrize("case_id,data,expected", PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES])
def test_bad_pipeline_config(capsys, write_config, case_id, data, expected):
    config = write_config(base_config())
    pipeline = write_config(data, name="pipeline_config.yaml")
    code, message = run_validate(capsys, config, "--pipeline-config", str(pipeline))
    assert code == 2
    assert "pipeline_config.yaml" in message and expected in message


def test_good_schedules_pass(capsys, write_config):
    config = write_config(base_config())
    for expr in ("cron(0 6 ? * MON *)", "rate(1 day)", "rate(12 hours)", "cron(15 10 * * ? *)"):
        pipeline = write_config({"sagemaker": {"schedule": expr}}, name="pipeline_config.yaml")
        assert run_validate(capsys, config, "--pipeline-config", str(pipeline))[0] == 0, expr


def test_cli_subprocess_exit_code_and_no_traceback(write_config):
    path = write_config(mutate(lambda d: d["models"][0]["deployment_config"].update(num_instances=0)))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "validate", "--config", str(path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "models[0].deployment_config.num_instances" in proc.stderr
