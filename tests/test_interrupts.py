"""SIGINT and SIGTERM sent to a real `run` process using a SageMaker-backed model (on a moto server):
no endpoint, endpoint config or model is left, the summary says interrupted, the exit code says
which signal, and a rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_dataset

moto_server = pytest.importorskip("moto.server")
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def aws_server(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    server.stop()


def sagemaker_resources() -> dict[str, list[str]]:
    import boto3

    sm = boto3.client("sagemaker")
    return {"endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
            "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
            "models": [m["ModelName"] for m in sm.list_models()["Models"]]}


def start_run(tmp_path: Path, env: dict[str, str], out: Path) -> subprocess.Popen:
    write_dataset(tmp_path / "eval.jsonl", 40)
    config = {
        "pipeline": {"name": "sigs"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": "slow", "provider": "plugin_providers:SlowEndpointProvider", "model_id": "m",
                    "deployment_config": {"instance_type": "ml.g4dn.xlarge", "image_uri": "tgi:1"},
                    "evaluation_config": {"max_concurrency": 1}}],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # a cache of its own: answers cached by another test would make the run finish before the signal
    settings = {"local": {"model_cache_dir": str(tmp_path / "cache")}}
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(settings))
    child_env = {**os.environ, **env, "LLM_EVAL_ROLE_ARN": ROLE, "LLM_EVAL_WAIT_FOR_ENDPOINTS": "0",
                 "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.Popen([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                             str(tmp_path / "config.yaml"), "--output-dir", str(out)],
                            env=child_env, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"never saw {needle!r}:\n{''.join(lines)}")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_evaluation_deletes_what_the_run_created(tmp_path, aws_server, sig, code):
    out = tmp_path / "run"
    proc = start_run(tmp_path, aws_server, out)
    wait_for_line(proc, "/40 records")  # evaluating: the endpoint is up and being asked
    assert sagemaker_resources()["endpoints"] == ["llm-eval-slow"]
    sent = time.monotonic()
    proc.send_signal(sig)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == code, rest
    assert time.monotonic() - sent < 30
    assert sagemaker_resources() == {"endpoints": [], "configs": [], "models": []}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["selection"]["best"] is None
    assert summary["models"]["slow"]["status"] == "interrupted"
    asked = len((out / "models" / "slow" / "outputs.jsonl").read_text().splitlines())
    assert 0 < asked < 40  # stopped part-way: no new calls after the signal
    # how far it got, read while the last answer in hand may still have been on its way to the file
    slow = summary["models"]["slow"]
    assert slow["error"] in (f"interrupted after {asked} of 40 records", f"interrupted after {asked - 1} of 40 records")
    assert (slow["records"], slow["errors"], slow["first_error"]) == (40, 0, None)
    assert "--output-dir" in rest  # tells how to resume

    # the rerun resumes: it asks only what was not answered, and finishes
    proc = start_run(tmp_path, aws_server, out)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, rest[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["models"]["slow"]["resumed"] == asked
    assert sagemaker_resources()["endpoints"] == []
