"""`plan`'s expected wall time: each step's expected duration placed as an executor places steps, at most
N at once (`lib/plan/schedule.py`)."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import write_dataset

from lib.plan.model import Plan, Ref, Step
from lib.plan.schedule import expected_wall_seconds


def step(name: str, *deps: str) -> Step:
    return Step(name, "evaluate", "m:f", {f"d{i}": Ref(d) for i, d in enumerate(deps)})


def test_steps_wait_for_their_dependencies_and_for_a_free_slot():
    # a -> (b, c, d) -> e ; a 1 s, b c d 10 s each, e 1 s
    plan = Plan("p", [step("a"), step("b", "a"), step("c", "a"), step("d", "a"), step("e", "b", "c", "d")])
    durations = {"a": 1, "b": 10, "c": 10, "d": 10, "e": 1}
    assert expected_wall_seconds(plan, durations, 3) == {"wall_s": 12, "critical_path_s": 12, "busy_s": 32}
    assert expected_wall_seconds(plan, durations, 2)["wall_s"] == 22  # b and c, then d
    assert expected_wall_seconds(plan, durations, 1)["wall_s"] == 32  # one at a time: the sum


def test_plan_shows_the_wall_time_of_many_models_given_parallelism(tmp_path, capsys):
    from pipelines.build_pipeline import main

    write_dataset(tmp_path / "eval.jsonl", 40)
    config = {"pipeline": {"name": "many"},
              "dataset": {"dataset_name": "t", "input_data_location": "eval.jsonl", "model_input_key": "question",
                          "target_output_key": "answer"},
              "models": [{"name": f"m{i}", "model_id": "huggingface-llm-falcon-7b-bf16"} for i in range(50)],
              "algorithms": [{"algorithm": "FactualKnowledge"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    walls = {}
    for parallel in (10, 50):
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump({"sagemaker": {"max_parallel_steps": parallel}}))
        assert main(["plan", "--config", str(tmp_path / "c.yaml"), "--json"]) == 0
        walls[parallel] = json.loads(capsys.readouterr().out)["cost"]["sagemaker"]["schedule"]
    # every branch is deploy (5 min job + 10 min endpoint; it needs no data, so it runs beside preprocess)
    # -> evaluate (5 min + 40 x 2 s / 4) -> select, gate, register (5 min each): with 50 at once, that chain
    chain = (15 + 5 + 40 * 2 / 4 / 60 + 5 * 3) * 60
    assert walls[50]["critical_path_s"] == pytest.approx(chain, abs=1)
    # 51 steps are ready at the start (preprocess and 50 deploys) for 50 slots: the last deploy waits 5 min
    assert walls[50]["wall_s"] == pytest.approx(chain + 300, abs=1)
    assert walls[10]["wall_s"] > 3 * walls[50]["wall_s"]  # 150 branch steps through 10 slots
    assert walls[10]["busy_s"] == walls[50]["busy_s"]
    assert main(["plan", "--config", str(tmp_path / "c.yaml")]) == 0
    assert "expected wall time on SageMaker: " in capsys.readouterr().out
