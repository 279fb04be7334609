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
    # a misspelt required key is named as written, before any "missing" message
    ("misspelt-required-top", lambda d: d.update(datset=d.pop("dataset")),
     "at datset: unknown key 'datset' (did you mean 'dataset'?)"),
    ("misspelt-required-case", lambda d: d.update(Models=d.pop("models")),
     "unknown key 'Models' (did you mean 'models'?)"),
    ("misspelt-required-plural", lambda d: d.update(algorithm=d.pop("algorithms")),
     "unknown key 'algorithm' (did you mean 'algorithms'?)"),
    ("misspelt-required-hyphen", lambda d: d["models"][1].update({"model-id": d["models"][1].pop("model_id")}),
     "models[1].model-id: unknown key 'model-id' (did you mean 'model_id'?)"),
    ("misspelt-required-nested",
     lambda d: d["dataset"].update(input_data_locaton=d["dataset"].pop("input_data_location")),
     "unknown key 'input_data_locaton' (did you mean 'input_data_location'?)"),
    ("misspelt-algorithm-key", lambda d: d["algorithms"][0].update(algoritm=d["algorithms"][0].pop("algorithm")),
     "unknown key 'algoritm' (did you mean 'algorithm'?)"),
    # numbers are bounded, floats finite
    ("instances-bound", lambda d: d["models"][0]["deployment_config"].update(num_instances=1_000_000_000),
     "models[0].deployment_config.num_instances: must be at most 100"),
    ("retries-bound", lambda d: d["models"][1]["evaluation_config"].update(max_retries=1_000_000),
     "models[1].evaluation_config.max_retries: must be at most 20"),
    ("concurrency-bound", lambda d: d["models"][0]["evaluation_config"].update(max_concurrency=100_000),
     "models[0].evaluation_config.max_concurrency: must be at most 256"),
    ("timeout-inf", lambda d: d["models"][0]["evaluation_config"].update(timeout_seconds=float("inf")),
     "models[0].evaluation_config.timeout_seconds: '.inf' is not a finite number"),
    ("timeout-nan", lambda d: d["models"][0]["evaluation_config"].update(timeout_seconds=float("nan")),
     "'.nan' is not a finite number"),
    ("timeout-bound", lambda d: d["models"][0]["evaluation_config"].update(timeout_seconds=86400),
     "must be at most 3600"),
    ("parameter-nan", lambda d: d["models"][0]["evaluation_config"]["inference_parameters"].update(
        temperature=float("nan")), "models[0].evaluation_config.inference_parameters.temperature"),
    ("learning-rate-inf", lambda d: d["models"][0].update(
        finetuning={"train_data_path": "eval.jsonl", "parameters": {"learning_rate": float("inf")}}),
     "models[0].finetuning.parameters.learning_rate: '.inf' is not a finite number"),
    ("num-records-bound", lambda d: d["dataset"].update(num_records=10**12), "dataset.num_records: must be at most"),
    ("model-version-number", lambda d: d["models"][0].update(model_version=2.1),
     "models[0].model_version: a version is text, but 2.1 is a number"),
    ("empty-delimiter", lambda d: d["algorithms"][0].update(target_output_delimiter=""),
     "algorithms[0].target_output_delimiter: must not be empty"),
    ("empty-delimiter-option", lambda d: d["algorithms"].__setitem__(
        0, {"algorithm": "FactualKnowledge", "config": {"target_output_delimiter": ""}}),
     "algorithms[0].config.target_output_delimiter: must not be empty"),
    # placeholders
    ("prompt-template-typo", lambda d: d["models"][1]["evaluation_config"].update(prompt_template="Q: $model_inputs"),
     "'$model_inputs' is not a placeholder (did you mean '$model_input'?)"),
    ("prompt-template-other", lambda d: d["models"][1]["evaluation_config"].update(
        prompt_template="$model_input for $user"), "models[1].evaluation_config.prompt_template: '$user'"),
    ("prompt-template-dollar", lambda d: d["models"][1]["evaluation_config"].update(
        prompt_template="$model_input costs $5"), "write $$ for a dollar sign"),
    ("custom-attributes-long", lambda d: d["models"][0]["evaluation_config"].update(custom_attributes="x" * 1100),
     "models[0].evaluation_config.custom_attributes"),
    # names AWS would refuse later
    ("names-differ-in-case", lambda d: d["models"][1].update(name="Model-0"), "differs only in case from 'model-0'"),
    ("pipeline-name-derived", lambda d: d["pipeline"].update(name="p" * 57),
     "pipeline.name: the model package group name"),
    ("pipeline-name-schedule", lambda d: d.update(pipeline={"name": "p" * 56},
                                                   model_registry={"model_package_group_name": "g"}),
     "EventBridge schedule name"),
    ("model-name-endpoint", lambda d: d["models"][0].update(name="m" * 55),
     "models[0].name: the SageMaker endpoint name"),
    ("env-name", lambda d: d["models"][0]["deployment_config"].update(env={"1BAD": "x"}),
     "models[0].deployment_config.env"),
    ("env-value-number", lambda d: d["models"][0]["deployment_config"].update(env={"SM_NUM_GPUS": 1}),
     "models[0].deployment_config.env.SM_NUM_GPUS"),
    # data: supported locations only
    ("dataset-https", lambda d: d["dataset"].update(input_data_location="https://example.com/data.jsonl"),
     "'https://' is not a location this tool reads"),
    ("dataset-s3-empty", lambda d: d["dataset"].update(input_data_location="s3://"), "names no bucket"),
    ("dataset-s3-bucket-only", lambda d: d["dataset"].update(input_data_location="s3://my-bucket"),
     "names a bucket, not a file"),
    ("dataset-s3-folder", lambda d: d["dataset"].update(input_data_location="s3://my-bucket/data/"),
     "names a folder"),
    ("dataset-folder", lambda d: d["dataset"].update(input_data_location="."), "is a folder"),
    ("dataset-device", lambda d: d["dataset"].update(input_data_location="/dev/zero"), "not a regular file"),
    ("train-data-https", lambda d: d["models"][0].update(finetuning={"train_data_path": "https://x.org/t.jsonl"}),
     "models[0].finetuning.train_data_path: 'https://'"),
    ("train-data-device", lambda d: d["models"][0].update(finetuning={"train_data_path": "/dev/zero"}),
     "not a regular file"),
    ("train-data-bucket-only", lambda d: d["models"][0].update(finetuning_config={"train_data_path": "s3://bkt"}),
     "models[0].finetuning_config.train_data_path"),
    # provider-owned checks
    ("endpoint-url-no-scheme", lambda d: d["models"][0].update(provider="openai", endpoint_url="localhost:8000/v1"),
     "models[0].endpoint_url: 'localhost:8000/v1' has no scheme"),
    ("endpoint-url-ftp", lambda d: d["models"][0].update(provider="openai", endpoint_url="ftp://host/v1"),
     "'ftp://' is not a scheme"),
    ("endpoint-url-port", lambda d: d["models"][0].update(provider="openai", endpoint_url="http://localhost:99999/v1"),
     "models[0].endpoint_url"),
    ("local-model-unknown", lambda d: d["models"][0].update(provider="local", model_id="smollm2-135m"),
     "neither a local model this tool knows (smollm2-135m-instruct) (did you mean 'smollm2-135m-instruct'?)"),
    ("local-model-not-a-model", lambda d: d["models"][0].update(provider="local", model_id="eval.jsonl"),
     "is not a .gguf file nor a Hugging Face model folder"),
    ("local-train-s3", lambda d: d["models"][0].update(
        provider="local", model_id="smollm2-135m-instruct", finetuning={"train_data_path": "s3://bucket/train/"}),
     "a local model trains on local data"),
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
    ("deep-list", "x: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels deep"),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v\n",
     "nested more than 64 levels deep"),
    ("list-key", "pipeline: {name: x}\n[a, b]: 1\n", "line 2: a key must be a word or quoted text, not a list"),
    ("mapping-key", "? {a: 1}\n: 2\n", "not a mapping"),
    ("mixed-key-types", "pipeline: {name: x}\n1: one\n", "line 2: the key 1 is read as the number"),
    ("boolean-key", "pipeline: {name: x}\nyes: 1\n", "the key true is read as the boolean"),
    ("alias-loop", "x: &a [1, *a]\n", "refers to the list or mapping it is in"),
    ("alias-undefined", "x: *nowhere\n", "no anchor &nowhere"),
    ("anchor-twice", "x: &a 1\ny: &a 2\n", "line 2, at y: the anchor &a is defined twice"),
    ("too-many-aliases", "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n", "more than 1000 aliases"),
    ("date-value", "pipeline: {name: 2024-01-01}\n", "pipeline.name: this is read as a date"),
    ("set-value", "x: !!set {a, b}\n", "read as a set"),
    ("binary-value", "x: !!binary aGVsbG8=\n", "read as binary data"),
    ("huge-int", "x: " + "9" * 5000 + "\n", "more than 30 digits"),
    ("nul-character", "pipeline:\n  name: a\x00b\n", "line 2: the character U+0000"),
    ("tab-indent", "pipeline:\n\tname: x\n", "line 2: a tab at column 1: YAML indents with spaces only"),
    ("tab-in-a-list", "models:\n  - name: a\n\t  provider: openai\n", "line 3: a tab at column 1: YAML indents"),
    ("two-documents", "a: 1\n---\nb: 2\n", "single document"),
    ("merge-of-scalar", "x:\n  <<: 5\n", "expected a mapping or list of mappings for merging"),
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
    ("cron-hour", {"sagemaker": {"schedule": "cron(0 25 ? * MON *)"}}, "hour '25' is out of range: hours are 0-23"),
    ("cron-minute", {"sagemaker": {"schedule": "cron(60 6 * * ? *)"}}, "minute '60' is out of range"),
    ("cron-month", {"sagemaker": {"schedule": "cron(0 6 ? 13 MON *)"}}, "month '13'"),
    ("cron-weekday", {"sagemaker": {"schedule": "cron(0 6 ? * FUN *)"}}, "'FUN' is not a day of week"),
    ("tag-aws-prefix", {"sagemaker": {"tags": {"aws:team": "ml"}}}, "sagemaker.tags.aws:team: the tag key 'aws:team'"),
    ("tag-aws-prefix-list", {"sagemaker": {"tags": [{"Key": "AWS:x", "Value": "y"}]}}, "sagemaker.tags[0]"),
    ("tag-ours", {"sagemaker": {"tags": {"llm-eval-pipelines:pipeline": "x"}}}, "one this tool sets itself"),
    ("tag-characters", {"sagemaker": {"tags": {"team<1>": "ml"}}}, "has a character AWS refuses"),
    ("tag-value-long", {"sagemaker": {"tags": {"team": "v" * 257}}}, "is 257 characters; AWS allows 256"),
    ("tag-value-characters", {"sagemaker": {"tags": {"team": "a;b"}}}, "the value of tag 'team' has a character"),
    ("tag-count", {"sagemaker": {"tags": {f"t{i}": "v" for i in range(48)}}}, "at most 47"),
    ("tag-twice", {"sagemaker": {"tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}}, "given twice"),
    ("volume-bound", {"sagemaker": {"volume_size": 100_000}}, "sagemaker.volume_size: must be at most 16384"),
    ("parallel-bound", {"sagemaker": {"max_parallel_steps": 10**9}}, "sagemaker.max_parallel_steps"),
    ("keep-alive-bound", {"sagemaker": {"keep_alive_period_in_seconds": 3601}}, "must be at most 3600"),
    ("subnet", {"sagemaker": {"subnets": ["my-subnet"]}}, "a subnet id looks like"),
    ("security-groups", {"sagemaker": {"security_group_ids": [f"sg-{i}" for i in range(6)]}}, "at most 5"),
    ("environment-name", {"sagemaker": {"environment": {"MY-VAR": "1"}}}, "an environment variable name"),
    ("workers-bound", {"local": {"max_workers": 10_000}}, "local.max_workers: must be at most 64"),
    ("pipeline-inf", {"sagemaker": {"max_retries": float("inf")}}, "'.inf' is not a finite number"),
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
