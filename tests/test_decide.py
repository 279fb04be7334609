"""Decisions as data: the selection policy, its margin, and metrics, as plain functions of records."""

from __future__ import annotations

import json

import pytest
import yaml

from lib.decide.bootstrap import paired_difference
from lib.decide.selection import choose
from lib.run.records import ModelResult


def result(name: str, fk: float, qa: float = 0.5, p95: float = 1.0, errors: int = 0, status: str = "succeeded"):
    return ModelResult(name, status=status, records=100, errors=errors, latency_p95_s=p95, cost_usd=0.0,
                       scores={"factual_knowledge": {"factual_knowledge": fk},
                               "qa_accuracy": {"f1_score": qa, "exact_match_score": qa / 2}})


POLICY = {"objectives": [{"metric": "factual_knowledge", "weight": 0.7, "direction": "max"},
                         {"metric": "qa_accuracy.exact_match_score", "weight": 0.3, "direction": "max"}],
          "constraints": [{"metric": "error_rate", "max": 0.02}, {"metric": "latency_p95_s", "max": 4.0}]}


def test_weighted_objectives_are_normalised_across_candidates_and_constraints_exclude_with_a_reason():
    chosen = choose([result("a", 0.60, qa=0.2), result("b", 0.50, qa=1.0), result("c", 0.55, qa=0.6),
                     result("slow", 0.90, p95=5.0), result("flaky", 0.95, errors=5)], POLICY)
    # a: 0.7*1 + 0.3*0 = 0.7; b: 0.7*0 + 0.3*1 = 0.3; c: 0.7*0.5 + 0.3*0.5 = 0.5
    assert [r["model"] for r in chosen.ranking] == ["a", "c", "b"]
    assert chosen.candidates["a"]["weighted"] == pytest.approx(0.7)
    assert chosen.candidates["c"]["normalised"] == {"factual_knowledge": pytest.approx(0.5),
                                                    "qa_accuracy.exact_match_score": pytest.approx(0.5)}
    assert chosen.best == "a" and chosen.best_value == 0.60
    assert chosen.excluded["slow"] == "latency_p95_s = 5 is above the maximum 4"
    assert chosen.excluded["flaky"] == "error_rate = 0.05 is above the maximum 0.02"
    assert chosen.candidates["slow"]["broke"] == chosen.excluded["slow"]
    assert chosen.margin["over"] == "c" and chosen.margin["difference"] == pytest.approx(0.05)


def test_ties_keep_config_order_and_min_objectives_prefer_the_lower():
    tied = choose([result("first", 0.5), result("second", 0.5)], {"metric": "factual_knowledge"})
    assert tied.best == "first"
    fastest = choose([result("a", 0.5, p95=3.0), result("b", 0.5, p95=1.0)],
                     {"objectives": [{"metric": "latency_p95_s", "weight": 1, "direction": "min"}]})
    assert fastest.best == "b" and fastest.margin["difference"] == pytest.approx(2.0)
    assert "n" not in fastest.margin  # a run metric has no per-record values: no interval


def test_failed_and_partial_models_and_missing_metrics():
    chosen = choose([result("dead", 0.9, status="failed"), result("partial", 0.4, status="partial"),
                     ModelResult("unscored", records=10, errors=0)], {"metric": "factual_knowledge"})
    assert chosen.best == "partial"  # within its error budget: selectable
    assert "dead" in chosen.excluded and chosen.excluded["unscored"] == "no value for factual_knowledge"


def test_the_margin_carries_a_paired_bootstrap_interval_over_records():
    ids = [f"r{i}" for i in range(200)]
    better = {i: 1.0 if n % 10 < 7 else 0.0 for n, i in enumerate(ids)}  # 70% right
    worse = {i: 1.0 if n % 10 < 4 else 0.0 for n, i in enumerate(ids)}  # 40% right, on the same records
    per_record = {"a": better, "b": worse}
    chosen = choose([result("a", 0.7), result("b", 0.4)], {"metric": "factual_knowledge"},
                    per_record=lambda model, metric: per_record[model])
    m = chosen.margin
    assert m["n"] == 200 and m["difference"] == pytest.approx(0.3) and m["significant"]
    assert 0.2 < m["low"] < 0.3 < m["high"] < 0.4
    # the same answers on every record but one: ahead, not by more than noise
    close = paired_difference(better, {**better, "r0": 0.0}, "factual_knowledge")
    assert close.difference == pytest.approx(0.005) and close.low == 0.0 and close.n == 200
    # seeded: the same inputs give the same interval
    assert paired_difference(better, worse, "x") == paired_difference(better, worse, "x")


def test_the_policy_in_a_config_validates_and_names_mistakes(write_config, capsys):
    from conftest import base_config

    from lib.config import load_config
    from pipelines.build_pipeline import main

    data = base_config(1)
    data["algorithms"].append({"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>"})
    data["selection"] = {**POLICY, "confidence": 0.9}
    selection = load_config(write_config(data)).evaluation["selection"]
    assert selection["metric"] == "factual_knowledge" and len(selection["objectives"]) == 2
    assert selection["constraints"][1] == {"metric": "latency_p95_s", "max": 4.0, "min": None}
    data["selection"]["constraints"][0]["metric"] = "eror_rate"
    assert main(["validate", "--config", str(write_config(data))]) == 2
    err = capsys.readouterr().err
    assert "selection.constraints[0].metric" in err and "did you mean 'error_rate'" in err
    data["selection"] = {"metric": "factual_knowledge", "objectives": POLICY["objectives"]}
    assert main(["validate", "--config", str(write_config(data))]) == 2
    assert "either 'metric'" in capsys.readouterr().err


def test_a_run_records_the_policy_candidates_and_margin(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import ROOT, write_dataset
    from fake_servers import chat_server, reply

    rows = [json.loads(line) for line in (ROOT / "data" / "trivia_eval.jsonl").read_text().splitlines()[:12]]
    answers = {r["question"]: r["answer"].split("<OR>")[0] for r in rows}

    def knows(share: float):
        def answer(n, headers, body):
            q = body["messages"][-1]["content"]
            right = (sorted(answers).index(q) % 12) < share * 12
            return 200, reply(answers[q] if right else "no idea")
        return answer

    write_dataset(tmp_path / "eval.jsonl", 12)
    with chat_server(knows(0.75)) as good, chat_server(knows(0.25)) as poor:
        config = {"pipeline": {"name": "policy"},
                  "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                              "model_input_key": "question", "target_output_key": "answer"},
                  "models": [{"name": n, "provider": "openai", "model_id": "m", "endpoint_url": u,
                              "evaluation_config": {"max_retries": 0}} for n, u in (("poor", poor), ("good", good))],
                  "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}],
                  "selection": {"objectives": [{"metric": "factual_knowledge", "weight": 1}],
                                "constraints": [{"metric": "error_rate", "max": 0.01}]}}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump({"local": {"model_cache_dir": str(tmp_path)}}))
        proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                               str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    selection = json.loads((tmp_path / "run" / "summary.json").read_text())["selection"]
    assert selection["best"] == "good" and [r["model"] for r in selection["ranking"]] == ["good", "poor"]
    assert selection["candidates"]["good"]["values"]["error_rate"] == 0.0
    assert selection["margin"]["over"] == "poor" and selection["margin"]["n"] == 12
    assert selection["margin"]["difference"] == pytest.approx(0.5)


def test_plan_prints_the_cost_and_run_refuses_over_budget(write_config, capsys):
    from conftest import base_config

    from pipelines.build_pipeline import main

    data = base_config(2)  # two JumpStart models on ml.g5.2xlarge, 5 records
    assert main(["plan", "--config", str(write_config(data))]) == 0
    out = capsys.readouterr().out
    # endpoint: $1.515/h x (10 min start-up + 5 records x 2 s / 4 in flight) = $0.2536 per model
    assert "model-0: $0.25 (endpoint $0.25)" in out and "on SageMaker: $" in out
    assert main(["plan", "--config", str(write_config(data)), "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)["cost"]["sagemaker"]
    assert cost["models"]["model-0"]["usd"] == pytest.approx(1.515 * (10 / 60 + 5 * 2 / 4 / 3600), abs=1e-4)
    assert cost["steps_usd"] > 0 and cost["total_usd"] > 0.5
    data["budget"] = {"max_usd": 0.1}
    assert main(["start", "--config", str(write_config(data))]) == 2
    err = capsys.readouterr().err
    assert "not started: the estimated cost $" in err and "above budget.max_usd $0.1" in err
    assert main(["run", "--config", str(write_config(data))]) == 2  # the endpoints would cost $0.51
    assert "not started" in capsys.readouterr().err


def test_a_model_stops_asking_when_its_share_of_the_budget_is_spent(tmp_path, write_config):
    from conftest import base_config

    from lib.config import load_config
    from lib.engine.invoke import Spend, invoke_records
    from lib.engine.invokers import Answer
    from lib.plan import build_plan

    records = [{"id": f"r{i}", "model_input": f"q{i}", "target_output": "a"} for i in range(10)]
    calls = []

    def invoker(prompt):
        calls.append(prompt)
        return Answer("a", prompt_tokens=1000, generated_tokens=1000)  # $0.003 + $0.015 at Sonnet's prices

    spend = Spend({"usd_per_1k_input_tokens": 0.003, "usd_per_1k_output_tokens": 0.015}, limit_usd=0.05)
    rows, stats = invoke_records(records, invoke={"prompt_template": "$model_input"}, invoker=invoker,
                                 identity="m", outputs_uri=str(tmp_path / "out.jsonl"), cache=None,
                                 max_concurrency=1, spend=spend)
    assert len(calls) == 3  # $0.018 each: the third crosses $0.05, no fourth call starts
    assert spend.spent_usd == pytest.approx(0.054)
    assert stats.errors == 7 and rows[3]["error"].startswith("not asked: this model's share of the budget")
    assert stats.invocations == 3 and stats.attempts == 3  # the records left unasked are no calls
    data = base_config(2)
    data["budget"] = {"max_usd": 30}
    plan = build_plan(load_config(write_config(data)))
    assert plan.step("evaluate-model-0").args["budget_share_usd"] == 15.0  # shared equally, in both executors


def test_a_result_without_counts_has_no_error_rate_rather_than_a_crash():
    from lib.decide.metrics import value_of

    assert value_of(ModelResult("m", records=10), "error_rate") is None
    assert value_of(ModelResult("m", records=10, errors=1), "error_rate") == 0.1


def test_a_judges_calls_are_in_the_estimate_and_spend_the_candidates_share_of_the_budget(tmp_path, monkeypatch,
                                                                                           capsys):
    """A Bedrock judge (a fake Converse server: moto has no Converse) rates at Sonnet's prices: `plan`
    counts one call per record and metric, the run charges its calls to the candidate's share and stops
    asking it once the share is spent, and the model's cost says what judging cost."""
    from fake_servers import chat_server, reply
    from test_judge import judge_config

    from pipelines.build_pipeline import main

    judge_calls = []

    def answer(n, headers, body):
        if "messages" in body and isinstance(body["messages"][0].get("content"), str):  # OpenAI: the candidate
            return 200, reply("Paris")
        judge_calls.append(body)
        return 200, {"output": {"message": {"role": "assistant", "content": [{"text": "Rating: 5. Right."}]}},
                     "usage": {"inputTokens": 1000, "outputTokens": 1000}, "stopReason": "end_turn"}

    with chat_server(answer) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url.removesuffix("/v1"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        config = judge_config(tmp_path, url, url, n=6,
                              judge={"provider": "bedrock", "model_id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                                     "evaluation_config": {"max_concurrency": 1, "max_retries": 0}})
        data = yaml.safe_load(config.read_text())
        data["budget"] = {"max_usd": 0.05}
        del data["algorithms"][1]["custom_metrics"]  # one metric: correctness
        config.write_text(yaml.safe_dump(data))

        assert main(["plan", "--config", str(config), "--json"]) == 0
        cost = json.loads(capsys.readouterr().out)["cost"]["local"]
        # 6 records x 1 metric, 200 prompt + 256 output tokens assumed: 6 x $0.00444
        assert cost["models"]["cand"]["parts"] == {"judge": pytest.approx(0.0266, abs=1e-4)}
        assert cost["unknown"] == ["cand"]  # the candidate's own price is unknown, the judge's is not

        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 0
        # each rating costs $0.003 + $0.015 = $0.018: the third crosses the $0.05 share, no fourth is asked
        assert len(judge_calls) == 3
        model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
        assert model["scoring_cost_usd"] == pytest.approx(0.054)
        assert model["cost_usd"] is None  # the candidate's own price is unknown, so the total is too
        notes = model["notes"]["llm_judge"]
        assert any("the judge's calls cost $0.0540" in n for n in notes)
        assert any("failed on 3 ratings" in n and "share of the budget" in n for n in notes)
        assert model["scores"]["llm_judge"]["correctness"] == 1.0  # the three it rated
