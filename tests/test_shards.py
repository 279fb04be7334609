"""`dataset.shards`: each model's records asked by N parallel steps over disjoint ranges, then one merge
step scores them as one evaluation, so the summary is what an unsharded run writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, fake_aws, write_dataset
from fake_servers import chat_server, reply

from steps.evaluate import shard_range

CLI = [sys.executable, str(ROOT / "pipelines" / "build_pipeline.py")]


@pytest.mark.parametrize("total, count", [(12, 3), (10, 3), (2, 5), (0, 2), (100_003, 7)])
def test_shards_cover_every_record_once_in_order(total, count):
    ranges = [shard_range(total, k, count) for k in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # disjoint, contiguous
    sizes = [e - s for s, e in ranges]
    assert max(sizes) - min(sizes) <= 1


def write_config(folder: Path, url: str, shards: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_dataset(folder / "eval.jsonl", 14)
    dataset = {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
               "model_input_key": "question", "target_output_key": "answer"}
    if shards:
        dataset["shards"] = shards
    config = {"pipeline": {"name": "sharded"}, "dataset": dataset,
              "models": [{"name": n, "provider": "openai", "model_id": n, "endpoint_url": url,
                          # retries absorb a refused connection on a loaded machine; the 500 stays a 500
                          "evaluation_config": {"max_retries": 2}} for n in ("alpha", "beta")],
              "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"},
                             {"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>"},
                             {"algorithm": "CustomScorer", "preset": "f1"}]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(folder / "runs"), "model_cache_dir": str(folder / "cache"), "max_workers": 3}}))
    return folder / "config.yaml"


def test_a_sharded_run_writes_the_summary_an_unsharded_one_does(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:14]]
    answers = {r["question"]: r["answer"].split("<OR>")[0] for r in rows}
    asked: list[tuple[str, str]] = []

    def answer(n, headers, body):  # alpha knows every third question; beta answers with a sentence; one fails
        q = body["messages"][-1]["content"]
        asked.append((body["model"], q))
        i = sorted(answers).index(q)
        if body["model"] == "beta" and i == 5:
            return 500, {"error": {"message": "boom"}}
        if body["model"] == "alpha":
            return 200, reply(answers[q] if i % 3 == 0 else "I do not know")
        return 200, reply(f"I believe it is {answers[q]}, if I remember right")

    with chat_server(answer) as url:
        plain = write_config(tmp_path / "plain", url, None)
        sharded = write_config(tmp_path / "sharded", url, 3)
        one = subprocess.run([*CLI, "run", "--config", str(plain), "--output-dir", str(tmp_path / "plain" / "run")],
                             capture_output=True, text=True, timeout=300)
        asked_plain = len(asked)
        three = subprocess.run([*CLI, "run", "--config", str(sharded), "--output-dir",
                                str(tmp_path / "sharded" / "run")], capture_output=True, text=True, timeout=300)
    assert one.returncode == three.returncode == 3, three.stderr[-2000:]  # beta's failed record: exit 3 in both
    # each record of each model asked in each run (the 500 is retried); both runs have caches of their own
    assert len(set(asked[:asked_plain])) == len(set(asked[asked_plain:])) == 28
    assert len(asked) - asked_plain == asked_plain
    for model in ("alpha", "beta"):
        assert f"evaluate-{model}-shard-2" in three.stderr and f"merge-{model}" in three.stderr
    a = json.loads((tmp_path / "plain" / "run" / "summary.json").read_text())
    b = json.loads((tmp_path / "sharded" / "run" / "summary.json").read_text())
    for model in ("alpha", "beta"):
        x, y = a["models"][model], b["models"][model]
        assert y["scores"] == x["scores"] and y["scores"]  # identical numbers
        for key in ("status", "records", "errors", "invocations", "cache_hits", "first_error", "error"):
            assert y[key] == x[key], key
        for name in ("outputs.jsonl", "factual_knowledge.jsonl", "qa_accuracy.jsonl"):
            mine = [json.loads(line) for line in (tmp_path / "sharded" / "run" / "models" / model / name).open()]
            theirs = [json.loads(line) for line in (tmp_path / "plain" / "run" / "models" / model / name).open()]
            drop = ("latency_s", "attempts")  # timing differs run to run
            assert [{k: v for k, v in r.items() if k not in drop} for r in mine] == \
                   [{k: v for k, v in r.items() if k not in drop} for r in theirs]
        assert len(list((tmp_path / "sharded" / "run" / "models" / model / "shards").iterdir())) == 3
    assert b["models"]["beta"]["errors"] == 1 and b["models"]["beta"]["status"] == "partial"
    assert b["selection"]["best"] == a["selection"]["best"] and b["selection"]["ranking"] == a["selection"]["ranking"]


def test_the_plan_shows_shards_and_a_merge_per_model(tmp_path, capsys):
    from pipelines.build_pipeline import main

    config = write_config(tmp_path, "http://127.0.0.1:9/v1", 4)
    assert main(["plan", "--config", str(config), "--json"]) == 0
    steps = {s["name"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    shards = [n for n in steps if n.startswith("evaluate-alpha-shard-")]
    assert len(shards) == 4 and "evaluate-alpha" not in steps
    assert set(steps["merge-alpha"]["depends_on"]) >= set(shards)
    assert "merge-alpha" in steps["select"]["depends_on"] and "merge-alpha" in steps.get("cleanup-alpha", {
        "depends_on": ["merge-alpha"]})["depends_on"]
    assert all(steps[n]["depends_on"] == ["preprocess", "deploy-alpha"] or set(steps[n]["depends_on"]) ==
               {"preprocess", "deploy-alpha"} for n in shards)  # the shards wait for nothing else: parallel


def test_shards_is_a_whole_number_from_1_to_64(tmp_path, capsys):
    from pipelines.build_pipeline import main

    config = write_config(tmp_path, "http://127.0.0.1:9/v1", 65)
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "dataset.shards" in err and "64" in err


def test_on_sagemaker_the_shards_are_parallel_steps_before_one_merge(monkeypatch, tmp_path):
    moto = pytest.importorskip("moto")
    from conftest import base_config
    from test_sagemaker import build, references, steps_by_name, write_configs

    fake_aws(monkeypatch)
    write_dataset(tmp_path / "eval.jsonl", 5)
    data = base_config(2)
    data["dataset"]["shards"] = 3
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="llm-eval-test")
        config, _ = write_configs(tmp_path, data)
        _, definition = build(config)
    steps = steps_by_name(definition)
    shards = [n for n in steps if n.startswith("evaluate-model-0-shard-")]
    assert len(shards) == 3 and "evaluate-model-0" not in steps
    assert all(references(steps[n]) == {"preprocess", "deploy-model-0"} for n in shards)
    assert references(steps["merge-model-0"]) >= set(shards)
    assert "merge-model-0" in references(steps["select"])
