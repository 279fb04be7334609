"""Hostile and mistaken input beyond the table in test_config_errors.py: YAML that explodes, merge keys
and anchor parking, names made from the config, and data files that would break a run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, base_config

from lib.config import load_config
from lib.errors import ConfigError


def bomb(levels: int = 9, width: int = 9, indent: int = 0) -> str:
    """The billion laughs: ``width`` aliases per level, ``levels`` deep; 2 KB on disk."""
    pad = " " * indent
    lines = [f'{pad}a0: &a0 [{", ".join(["lol"] * width)}]']
    lines += [f'{pad}a{i}: &a{i} [{", ".join([f"*a{i - 1}"] * width)}]' for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def config_text(**evaluation_config: str) -> str:
    """base_config(1) as YAML with raw YAML values (indented 6) spliced into models[0].evaluation_config."""
    data = base_config(1)
    for key in evaluation_config:
        data["models"][0]["evaluation_config"].pop(key, None)
    text = yaml.safe_dump(data, sort_keys=False)
    anchor = "    prompt_template: $model_input\n"
    assert text.count(anchor) == 1
    return text.replace(anchor, anchor + "".join(f"    {key}:\n{value}" for key, value in evaluation_config.items()))


def refused(path: Path, *pipeline_config: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, *pipeline_config)
    message = str(info.value)
    assert "\n" not in message and str(path.name) in message
    return info.value


@pytest.mark.parametrize("where", ["content_template", "custom_attributes", "inference_parameters"])
def test_alias_bomb_is_refused_fast_in_little_memory(write_config, where):
    path = write_config(config_text(**{where: bomb(indent=6)}))
    assert len(path.read_bytes()) < 4000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refused(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "alias bomb" in error.message and error.where.startswith(f"models[0].evaluation_config.{where}")
    assert elapsed < 0.5, elapsed
    assert peak < 20 * 2**20, peak  # the bound is 100 MB; a few MB is what it takes


def test_a_bomb_parked_under_an_x_key_is_still_refused(write_config):
    path = write_config("x-anchors:\n" + bomb(indent=2) + yaml.safe_dump(base_config(1), sort_keys=False))
    assert "alias bomb" in refused(path).message


def test_merge_key_bomb_is_refused(write_config):
    text = "x-k0: &k0 {" + ", ".join(f"k{i}: 1" for i in range(9)) + "}\n"
    text += "".join(f"x-k{i}: &k{i}\n  <<: [{', '.join([f'*k{i - 1}'] * 9)}]\n" for i in range(1, 10))
    assert "alias bomb" in refused(write_config(text + yaml.safe_dump(base_config(1)))).message


def test_bomb_through_the_cli_exits_2_with_one_paragraph_and_creates_nothing(write_config, config_dir):
    path = write_config(config_text(inference_parameters=bomb(indent=6)))
    before = sorted(p.name for p in config_dir.iterdir())
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "validate", "--config",
                           str(path)], capture_output=True, text=True, cwd=config_dir, timeout=60)
    assert time.perf_counter() - started < 10  # interpreter start included; the refusal itself takes ms
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "line " in proc.stderr and "models[0].evaluation_config.inference_parameters" in proc.stderr
    assert sorted(p.name for p in config_dir.iterdir()) == before


def test_an_oversized_file_is_refused_before_it_is_parsed(write_config):
    path = write_config(yaml.safe_dump(base_config(1)) + "#" * 300_000 + "\n")
    started = time.perf_counter()
    assert "a config is at most 256 KB" in refused(path).message
    assert time.perf_counter() - started < 0.2


def test_a_config_that_is_not_utf8_names_its_line(config_dir):
    path = config_dir / "config.yaml"
    path.write_bytes(yaml.safe_dump(base_config(1), sort_keys=False).replace("trivia", "trivià").encode("latin-1"))
    error = refused(path)
    assert error.line == 4 and "not UTF-8" in error.message and "0xe0" in error.message


def test_version_written_as_a_number_is_quoted_back_as_written(write_config):
    text = yaml.safe_dump(base_config(1), sort_keys=False).replace("model_version: '*'", "model_version: 2.10")
    error = refused(write_config(text))
    assert error.where == "models[0].model_version"
    assert 'put it in quotes, model_version: "2.10"' in error.message and "number 2.1" in error.message
    ok = write_config(text.replace("model_version: 2.10", 'model_version: "2.10"'))
    assert load_config(ok).models[0]["model_version"] == "2.10"


MERGED = """\
x-defaults: &defaults
  model_id: huggingface-llm-falcon-7b-bf16
  deployment_config: &deployment
    instance_type: ml.g5.2xlarge
    num_instances: {instances}
  evaluation_config:
    content_template: PROMPT_PLACEHOLDER
    inference_parameters: {{max_new_tokens: 20}}
pipeline: {{name: merged}}
dataset: {{dataset_name: trivia, input_data_location: eval.jsonl, model_input_key: question,
          target_output_key: answer}}
models:
  - <<: *defaults
    name: first
  - <<: *defaults
    name: second
    deployment_config:
      <<: *deployment
      instance_type: ml.g5.12xlarge
algorithms:
  - algorithm: FactualKnowledge
    target_output_delimiter: "<OR>"
"""


def test_merge_keys_share_model_settings_and_x_keys_park_anchors(write_config):
    cfg = load_config(write_config(MERGED.format(instances=1)))
    first, second = cfg.models
    assert first["model_id"] == second["model_id"] == "huggingface-llm-falcon-7b-bf16"
    assert first["invoke"]["inference_parameters"] == {"max_new_tokens": 20}
    assert first["deployment"]["instance_type"] == "ml.g5.2xlarge"
    assert second["deployment"] == {"instance_type": "ml.g5.12xlarge", "num_instances": 1}  # own key wins
    assert "x-defaults" not in json.dumps(cfg.evaluation)


def test_an_error_in_merged_settings_points_at_the_line_it_is_written_on(write_config):
    error = refused(write_config(MERGED.format(instances=0)))
    assert error.where == "models[0].deployment_config.num_instances" and error.line == 5


def test_x_keys_are_parked_only_at_the_top(write_config):
    data = base_config(1)
    data["models"][0]["x-note"] = "not here"
    assert "unknown key 'x-note'" in refused(write_config(data)).message


def test_x_keys_are_parked_in_the_settings_file_too(write_config):
    settings = write_config("x-tags: &tags {team: ml}\nsagemaker:\n  tags: *tags\n", name="pipeline_config.yaml")
    assert load_config(write_config(base_config(1)), settings).settings["sagemaker"]["tags"] == {"team": "ml"}


def test_derived_names_are_the_ones_the_code_makes():
    """aws_rules checks the names the tool makes; if a maker's format changes, the check must too."""
    from lib.aws.failure_rule import rule_name, sweeper_name
    from lib.config import aws_rules
    from pipelines.cli.sagemaker_cmds import schedule_name

    pipeline = "p"
    assert aws_rules.SCHEDULE[0].format(pipeline=pipeline) == schedule_name(pipeline)
    assert aws_rules.SWEEPER[0].format(pipeline=pipeline) == sweeper_name(pipeline)
    assert aws_rules.SWEEP_RULE[0].format(pipeline=pipeline) == rule_name(pipeline)


def test_default_registry_and_endpoint_names_are_the_ones_checked(write_config):
    cfg = load_config(write_config(base_config(1)))
    assert cfg.evaluation["model_registry"]["model_package_group_name"] == "test-pipeline-models"
    assert cfg.models[0]["endpoint_name"] == "llm-eval-model-0"


def test_sweep_names_are_checked_when_the_sweep_is_on(write_config):
    data = base_config(1)
    data["pipeline"]["name"] = "p" * 48  # p...-sweep-on-failure is 65 characters
    config = write_config(data)
    off = write_config({"sagemaker": {"sweep_on_failure": False}}, name="pipeline_config.yaml")
    assert load_config(config, off).pipeline_name == "p" * 48
    on = write_config({"sagemaker": {"sweep_on_failure": True}}, name="pipeline_config.yaml")
    error = refused(config, on)
    assert error.where == "pipeline.name" and error.line == 2
    assert "EventBridge rule name" in error.message and "at most 47" in error.message


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


GOOD_ROW = json.dumps({"question": "Who wrote Hamlet?", "answer": "Shakespeare"})


@pytest.mark.parametrize("bad_line,expected", [
    ('{"question": "Qu\xe9bec?", "answer": "x"}'.encode("latin-1"), "line 3 is not UTF-8 text: byte 0xe9"),
    ('{"question": null, "answer": "x"}', "line 3: 'question' (the model input) is null, not text"),
    ('{"question": ["a"], "answer": "x"}', "'question' (the model input) is a list"),
    ('{"question": "  ", "answer": "x"}', "'question' (the model input) is empty"),
    ('{"question": "q", "answer": 42}', "'answer' (the target output) is the number 42, not text"),
    ('{"question": "q"}', "line 3 has no key 'answer'"),
    ('["question", "answer"]', "line 3 is not a JSON object"),
    ('{"question": "x", "answer": "y"', "line 3 is not valid JSON (Expecting ',' delimiter, column 32)"),
    ("[" * 100_000 + "]" * 100_000, "line 3 is JSON nested too deeply"),
    ('{"question": ' + "9" * 5000 + "}", "line 3 cannot be read as a record"),
    ('{"question": "' + "a" * (1024 * 1024 + 10) + '"}', "line 3 is longer than 1 MB"),
])
def test_dataset_records_are_checked_line_by_line(write_config, config_dir, bad_line, expected):
    data = write_lines(config_dir / "eval.jsonl", [GOOD_ROW, "", bad_line, GOOD_ROW])
    error = refused(write_config(base_config(1)))
    assert error.where == "dataset.input_data_location" and str(data) in error.message
    assert expected in error.message


def test_a_dataset_is_read_with_bounded_memory(config_dir):
    """Checking a 4 MB dataset holds one line at a time, not the file."""
    from lib.config import data_files

    path = write_lines(config_dir / "big.jsonl", [GOOD_ROW] * 80_000)
    assert path.stat().st_size > 3_500_000
    tracemalloc.start()
    try:
        assert data_files.check_dataset(path, "question", "answer") == 80_000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak


def local_finetune_config(train: str, block: str = "finetuning") -> dict:
    data = base_config(1)
    data["models"][0].update(provider="local", model_id="smollm2-135m-instruct", **{block: {"train_data_path": train}})
    return data


@pytest.mark.parametrize("row,expected", [
    ({"q": "Who?", "a": "Me"}, "line 2 has no question: training reads the first of question, instruction, prompt"),
    ({"question": "Who?", "answer": ""}, "line 2 has no answer"),
    ({"instruction": "Who?", "response": None}, "line 2 has no answer"),
    ({"prompt": ["Who?"], "completion": "Me"}, "line 2: 'prompt' is"),
])
def test_local_fine_tune_rows_need_what_training_reads(write_config, config_dir, row, expected):
    write_lines(config_dir / "train.jsonl", [GOOD_ROW, json.dumps(row)])
    error = refused(write_config(local_finetune_config("train.jsonl", "finetuning_config")))
    assert error.where == "models[0].finetuning_config.train_data_path"
    assert expected in error.message and "train.jsonl" in error.message


def test_local_fine_tune_data_that_training_reads_passes(write_config, config_dir):
    folder = config_dir / "train"
    folder.mkdir()
    write_lines(folder / "a.jsonl", [GOOD_ROW, json.dumps({"instruction": "2+2?", "response": 4})])
    write_lines(folder / "b.jsonl", [json.dumps({"prompt": "Capital of France?", "completion": "Paris"})])
    cfg = load_config(write_config(local_finetune_config("train")))
    from lib.providers.local import _training_pairs

    assert len(_training_pairs(cfg.models[0]["finetune"]["train_data_uri"])) == 3


def test_an_empty_training_folder_is_refused_for_local(write_config, config_dir):
    (config_dir / "train").mkdir()
    assert "holds no .jsonl file" in refused(write_config(local_finetune_config("train"))).message


def test_a_training_file_that_is_a_fifo_is_refused_without_blocking(write_config, config_dir):
    import os

    os.mkfifo(config_dir / "train.jsonl")
    data = base_config(1)
    data["models"][0]["finetuning"] = {"train_data_path": "train.jsonl"}
    assert "not a regular file" in refused(write_config(data)).message
