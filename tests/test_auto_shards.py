"""`dataset.shards: auto`: the shard count is chosen from the dataset's record count when the plan is built:
one shard per RECORDS_PER_SHARD records, rounded up, at least 1, at most min(64, sagemaker.max_parallel_steps)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, fake_aws

from lib.config import load_config
from lib.plan import build_plan
from lib.plan.build import RECORDS_PER_SHARD

CLI = [sys.executable, str(ROOT / "pipelines" / "build_pipeline.py")]


def write_records(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        fh.writelines(f'{{"question": "q{i}", "answer": "a{i}"}}\n' for i in range(n))
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """700,000 records: more than 64 shards' worth."""
    return write_records(tmp_path_factory.mktemp("big") / "big.jsonl", 700_000)


def write_config(folder: Path, data: str, shards="auto", settings: dict | None = None, **dataset) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"pipeline": {"name": "auto-shards"},
              "dataset": {"dataset_name": "numbers", "input_data_location": data, "model_input_key": "question",
                          "target_output_key": "answer", "shards": shards, **dataset},
              "models": [{"name": "alpha", "provider": "openai", "model_id": "alpha",
                          "endpoint_url": "http://127.0.0.1:9/v1"}],
              "algorithms": [{"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>"}]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if settings is not None:
        (folder / "pipeline_config.yaml").write_text(yaml.safe_dump(settings))
    return folder / "config.yaml"


def evaluate_steps(config: Path) -> list[str]:
    """The names of the steps that ask model alpha, as the plan of ``config`` has them."""
    plan = build_plan(load_config(config))
    names = [s.name for s in plan.steps]
    asking = [n for n in names if n.startswith("evaluate-alpha")]
    assert ("merge-alpha" in names) == (len(asking) > 1)  # sharded: one merge step scores the shards as one
    return asking


def test_readme_states_the_rule():
    assert f"`auto`: one shard per {RECORDS_PER_SHARD:,} records, rounded up" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("records, shards", [(1, 1), (10_000, 1), (10_001, 2), (25_000, 3)])
def test_auto_chooses_one_shard_per_records_per_shard_rounded_up(tmp_path, records, shards):
    data = write_records(tmp_path / "data.jsonl", records)
    asking = evaluate_steps(write_config(tmp_path, str(data)))
    if shards == 1:
        assert asking == ["evaluate-alpha"]
    else:
        assert asking == [f"evaluate-alpha-shard-{k}" for k in range(shards)]


def test_auto_counts_what_the_loader_reads_blank_lines_aside_and_num_records_applied(tmp_path):
    data = tmp_path / "data.jsonl"
    write_records(data, 10_000)
    with open(data, "a") as fh:
        fh.write("\n   \n" + '{"question": "one more", "answer": "a"}\n\n')
    assert len(evaluate_steps(write_config(tmp_path / "blank", str(data)))) == 2  # 10,001 records
    assert evaluate_steps(write_config(tmp_path / "limited", str(data), num_records=10_000)) == ["evaluate-alpha"]


@pytest.mark.parametrize("settings, shards", [
    (None, 10),                                       # the default sagemaker.max_parallel_steps
    ({"sagemaker": {"max_parallel_steps": 3}}, 3),
    ({"sagemaker": {"max_parallel_steps": 1000}}, 64),  # never more than 64
])
def test_auto_is_capped_by_max_parallel_steps_and_64(tmp_path, big, settings, shards):
    asking = evaluate_steps(write_config(tmp_path, str(big), settings=settings))
    assert asking == [f"evaluate-alpha-shard-{k}" for k in range(shards)]


def test_auto_reads_an_s3_dataset_when_the_plan_is_built(monkeypatch, tmp_path):
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    body = "".join(f'{{"question": "q{i}", "answer": "a"}}\n' for i in range(20_001))
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="auto-shards-data")
        boto3.client("s3").put_object(Bucket="auto-shards-data", Key="eval/data.jsonl", Body=body.encode())
        config = write_config(tmp_path, "s3://auto-shards-data/eval/data.jsonl")
        assert len(evaluate_steps(config)) == 3


def test_a_number_is_kept_whatever_the_record_count(tmp_path):
    data = write_records(tmp_path / "data.jsonl", 25_000)
    assert evaluate_steps(write_config(tmp_path, str(data), shards=1)) == ["evaluate-alpha"]


def test_plan_says_the_chosen_count_and_why(tmp_path):
    data = write_records(tmp_path / "data.jsonl", 23_000)
    proc = subprocess.run([*CLI, "plan", "--config", str(write_config(tmp_path, str(data)))],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "auto: 23,000 records -> 3 shards" in proc.stdout
    assert "evaluate-alpha-shard-2" in proc.stdout and "evaluate-alpha-shard-3" not in proc.stdout


def test_a_misspelt_auto_is_one_paragraph_naming_the_file_and_key(tmp_path):
    data = write_records(tmp_path / "data.jsonl", 3)
    config = write_config(tmp_path, str(data), shards="automatic")
    proc = subprocess.run([*CLI, "validate", "--config", str(config)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, "one paragraph"
    assert str(config) in proc.stderr and "dataset.shards" in proc.stderr
    assert "'automatic'" in proc.stderr and "'auto'" in proc.stderr
