"""The quality gate: floors, the registry's champion beaten by more than noise on the same records,
the approval status it sets, the exit code CI reads, and reruns that register nothing new."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, fake_aws, write_dataset
from fake_servers import chat_server, reply

from lib.decide.gate import decide
from lib.run.records import ModelResult, RunSummary, Selection

GATE = {"min": {"factual_knowledge": 0.5}, "champion": "registry", "min_improvement": 0.01, "confidence": 0.95,
        "on_fail": "Rejected"}
IDS = [f"r{i}" for i in range(100)]


def summary(fk: float, dataset_hash: str = "d1") -> RunSummary:
    winner = ModelResult("w", records=100, scores={"factual_knowledge": {"factual_knowledge": fk}})
    return RunSummary("p", "e", {"w": winner}, Selection("factual_knowledge", best="w", best_value=fk),
                      dataset_hash=dataset_hash)


def share(right: float) -> dict[str, float]:
    return {i: 1.0 if n < right * 100 else 0.0 for n, i in enumerate(IDS)}


def champion(right: float, dataset_hash: str = "d1") -> dict:
    return {"model": "old", "version": 3, "per_record": share(right), "dataset_hash": dataset_hash}


def test_floors_and_no_champion():
    assert decide(GATE, summary(0.7), {}, share(0.7), None).approval_status == "Approved"
    low = decide(GATE, summary(0.4), {}, share(0.4), None)
    assert low.decision == "rejected" and low.approval_status == "Rejected"
    assert low.reasons == ["factual_knowledge = 0.4 is below the floor 0.5"]
    assert decide({**GATE, "on_fail": "PendingManualApproval"}, summary(0.4), {}, share(0.4),
                  None).approval_status == "PendingManualApproval"
    assert decide(None, summary(0.4), {}, share(0.4), None).status == "skipped"  # no gate: no decision


def test_the_champion_must_be_beaten_by_more_than_noise_on_the_same_records():
    clear = decide(GATE, summary(0.8), {}, share(0.8), champion(0.5))
    assert clear.decision == "approved" and clear.comparison["n"] == 100
    assert clear.comparison["low"] > 0.01 and clear.champion == {"model": "old", "version": 3, "package": None}
    noise = decide(GATE, summary(0.52), {}, share(0.52), champion(0.5))  # 2 records of 100 better
    assert noise.decision == "rejected" and "does not beat the champion old (version 3)" in noise.reasons[0]
    worse = decide(GATE, summary(0.6), {}, share(0.6), champion(0.7))
    assert worse.decision == "rejected" and worse.comparison["difference"] == pytest.approx(-0.1)
    other = decide(GATE, summary(0.9), {}, share(0.9), champion(0.5, dataset_hash="d2"))
    assert other.decision == "rejected" and "another dataset" in other.reasons[0]


def write_run_config(tmp_path: Path, url: str, gate: dict) -> Path:
    write_dataset(tmp_path / "eval.jsonl", 12)
    config = {"pipeline": {"name": "gated"},
              "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                          "model_input_key": "question", "target_output_key": "answer"},
              "models": [{"name": "bot", "provider": "openai", "model_id": "m", "endpoint_url": url,
                          "evaluation_config": {"max_retries": 0}}],
              "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
              "gate": gate}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
    return tmp_path / "c.yaml"


def run(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                           str(config), "--output-dir", str(out)], capture_output=True, text=True, timeout=300)


def test_a_local_run_gates_registers_and_an_identical_rerun_registers_nothing(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:12]]
    answers = {r["question"]: r["answer"].split("<OR>")[0] for r in rows}
    knows = {"share": 0.5}

    def answer(n, headers, body):
        q = body["messages"][-1]["content"]
        return 200, reply(answers[q] if sorted(answers).index(q) < knows["share"] * 12 else "no idea")

    gate = {"min": {"factual_knowledge": 0.3}, "champion": "registry", "min_improvement": 0.05}
    index = tmp_path / "model_registry" / "gated-models.jsonl"  # beside the runs of --output-dir
    with chat_server(answer) as url:
        config = write_run_config(tmp_path, url, gate)
        first = run(config, tmp_path / "one")
        assert first.returncode == 0, first.stderr[-2000:]  # no champion yet: approved
        versions = [json.loads(line) for line in index.read_text().splitlines()]
        assert [(v["version"], v["approval_status"]) for v in versions] == [(1, "Approved")]
        assert len(versions[0]["per_record"]) == 12  # kept with the version, for the next gate

        again = run(config, tmp_path / "two")  # the same model, data and (cached) answers
        assert again.returncode == 0, again.stderr[-2000:]
        s = json.loads((tmp_path / "two" / "summary.json").read_text())
        assert "champion already (version 1)" in s["gate"]["reasons"][0]
        assert s["registry"]["status"] == "skipped" and "identical to version 1" in s["registry"]["reason"]
        assert len(index.read_text().splitlines()) == 1

        knows["share"] = 0.25  # a worse model under the same name: new answers (no cache: other text)
        (tmp_path / "cache").rename(tmp_path / "cache-old")
        worse = run(config, tmp_path / "three")
        assert worse.returncode == 6, worse.stderr[-2000:]
        assert "exit code 6: a model was selected, but the gate rejected it" in worse.stderr
        s = json.loads((tmp_path / "three" / "summary.json").read_text())
        assert s["gate"]["decision"] == "rejected" and s["gate"]["comparison"]["n"] == 12
        assert s["registry"]["approval_status"] == "Rejected" and "does not beat" in s["registry"]["gate_reason"]
        report = (tmp_path / "three" / "report.html").read_text()
        assert "the gate rejected bot" in report[:report.index("<h2>Leaderboard</h2>")]


def test_a_champion_scored_on_other_data_is_evaluated_on_this_data_in_the_same_run(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:36]]
    answers = {r["question"]: r["answer"].split("<OR>")[0] for r in rows}
    asked: dict[str, list[str]] = {"m-old": [], "m-new": []}

    def answer(n, headers, body):  # m-old knows every other question, m-new all of them
        q = body["messages"][-1]["content"]
        asked[body["model"]].append(q)
        knows = body["model"] == "m-new" or sorted(answers).index(q) % 2 == 0
        return 200, reply(answers[q] if knows else "no idea")

    def dataset(start: int) -> None:
        (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[start:start + 12]))

    gate = {"min": {"factual_knowledge": 0.3}, "champion": "registry", "min_improvement": 0.05}
    index = tmp_path / "model_registry" / "gated-models.jsonl"
    with chat_server(answer) as url:
        config = write_run_config(tmp_path, url, gate)
        data = yaml.safe_load(config.read_text())
        data["models"][0]["model_id"] = "m-old"
        config.write_text(yaml.safe_dump(data))
        dataset(0)
        assert run(config, tmp_path / "one").returncode == 0  # m-old becomes version 1, approved

        data["models"][0].update(name="bot2", model_id="m-new")
        config.write_text(yaml.safe_dump(data))
        dataset(12)  # other questions: version 1's per-record scores cannot be paired with these
        asked["m-old"].clear()
        second = run(config, tmp_path / "two")
        assert second.returncode == 0, second.stderr[-2000:]
        assert sorted(asked["m-old"]) == sorted(r["question"] for r in rows[12:24])  # the champion, asked here
        s = json.loads((tmp_path / "two" / "summary.json").read_text())
        here = s["gate"]["champion"]["evaluated_here"]
        assert here["as"] == "champion-v1" and here["records"] == 12
        known = sum(sorted(answers).index(r["question"]) % 2 == 0 for r in rows[12:24]) / 12
        assert here["scores"]["factual_knowledge"]["factual_knowledge"] == pytest.approx(known)
        assert s["gate"]["decision"] == "approved" and s["gate"]["comparison"]["n"] == 12
        assert s["gate"]["comparison"]["difference"] == pytest.approx(1 - here["scores"]["factual_knowledge"][
            "factual_knowledge"])
        assert (tmp_path / "two" / "models" / "champion-v1" / "outputs.jsonl").exists()  # its evidence, kept
        assert "champion-v1" not in s["models"]  # not a candidate: it cannot be selected or registered
        assert "evaluating it on this one as champion-v1" in second.stderr
        report = (tmp_path / "two" / "report.html").read_text()
        assert "(version 1, evaluated on this run's data)" in report
        assert "evaluated in this run on this one (as champion-v1)" in report

        # a version that keeps no recipe (registered before recipes were kept) cannot be evaluated again:
        # the gate says so and says no
        lines = [json.loads(line) for line in index.read_text().splitlines()]
        assert lines[-1]["recipe"]["model"]["model_id"] == "m-new"
        del lines[-1]["recipe"]
        index.write_text("".join(json.dumps(line) + "\n" for line in lines))
        data["models"][0]["name"] = "bot3"
        config.write_text(yaml.safe_dump(data))
        dataset(24)
        third = run(config, tmp_path / "three")
        assert third.returncode == 6, third.stderr[-2000:]
        reasons = json.loads((tmp_path / "three" / "summary.json").read_text())["gate"]["reasons"]
        assert any("scored on another dataset and could not be evaluated on this one (its version keeps no recipe"
                   in r for r in reasons)


def test_the_gate_on_sagemaker_reads_the_champion_from_the_model_registry(monkeypatch):
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    with moto.mock_aws():
        import boto3

        from lib import storage
        from lib.run.layout import RunLayout
        from steps.gate import gate
        from steps.register import register

        boto3.client("s3").create_bucket(Bucket="runs")
        root = "s3://runs/p/runs/{execution_id}"
        registry = {"model_package_group_name": "g"}

        def execution(execution_id: str, right: float) -> dict:
            layout = RunLayout.resolve(root, execution_id)
            storage.write_jsonl(layout.scores("w", "factual_knowledge"),
                                [{"id": i, "factual_knowledge": v} for i, v in share(right).items()])
            s = summary(right)
            return {"status": "succeeded", "summary": s.to_dict()}

        first = gate(GATE, execution("e1", 0.6), registry, {}, root, "e1")
        assert first["gate"]["decision"] == "approved" and first["gate"]["champion"] is None
        assert register(registry, first, None, root, "e1")["approval_status"] == "Approved"
        second = gate(GATE, execution("e2", 0.9), registry, {}, root, "e2")
        assert second["gate"]["decision"] == "approved"
        assert second["gate"]["champion"]["version"] == 1 and second["gate"]["comparison"]["n"] == 100
        third = gate(GATE, execution("e3", 0.61), registry, {}, root, "e3")
        assert third["gate"]["decision"] == "rejected"
        record = register(registry, third, None, root, "e3")
        sm = boto3.client("sagemaker")
        package = sm.describe_model_package(ModelPackageName=record["model_package_arn"])
        assert package["ModelApprovalStatus"] == "Rejected" and "gate rejected" in package["ModelPackageDescription"]


def test_the_report_answers_which_model_and_why_at_the_top(tmp_path):
    from lib.reports import run_report_html
    from lib.run.layout import RunLayout
    from lib.run.records import Gate

    s = summary(0.8)
    s.models["w"].cost_usd = 0.42
    s.selection.margin = {"metric": "factual_knowledge", "over": "b", "difference": 0.3, "n": 100, "low": 0.2,
                          "high": 0.4, "confidence": 0.95, "significant": True}
    s.selection.objectives = [{"metric": "factual_knowledge", "weight": 1.0, "direction": "max"}]
    s.gate = Gate("succeeded", decision="approved", approval_status="Approved", model="w",
                  champion={"model": "old", "version": 3, "package": None},
                  comparison={"difference": 0.1, "low": 0.05, "high": 0.15, "n": 100}, reasons=["ok"])
    html = run_report_html(s, RunLayout(str(tmp_path)))
    top = html[:html.index("<h2>Leaderboard</h2>")]
    for needle in ("Selected: w", "ahead of b by 0.300", "95% interval [0.200,", "over 100 records",
                   "more than noise", "cost $0.42", "Gate: <b>approved</b> (Approved)",
                   "champion old\n(version 3)"):
        assert needle in top, needle
