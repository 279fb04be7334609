"""The invoke-once engine: retries, failures counted, outputs written as they arrive, resume, cache."""

from __future__ import annotations

import json
import threading
from string import Template

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import storage
from lib.engine.cache import OutputCache
from lib.engine.invoke import RetryPolicy, invoke_records, make_prompt
from lib.engine.invokers import Answer, PermanentError, TransientError, build_body, read_answer
from lib.scorers import score_outputs

INVOKE = {"prompt_template": "Q: $model_input", "content_template": "PROMPT_PLACEHOLDER",
          "inference_parameters": {"max_new_tokens": 8}, "output": "[0].generated_text"}
FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.002)


def records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "model_input": f"question {i}", "target_output": f"answer {i}"} for i in range(n)]


class CountingModel:
    """A stand-in model (not our code): answers 'answer N', counts calls, can fail on demand."""

    def __init__(self, fail_after: int | None = None, transient: dict | None = None) -> None:
        self.calls: list[str] = []
        self.fail_after = fail_after
        self.transient = dict(transient or {})
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> Answer:
        with self.lock:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise KeyboardInterrupt  # the run is killed here
            self.calls.append(prompt)
            left = self.transient.get(prompt, 0)
            if left:
                self.transient[prompt] = left - 1
                raise TransientError("HTTP 503: busy")
        if "permanent" in prompt:
            raise PermanentError("HTTP 400: bad input")
        return Answer(f"answer {prompt.split()[-1]}", 5, 2)


def run(rows, model, tmp_path, cache=None, concurrency=1, name="outputs.jsonl"):
    return invoke_records(rows, invoke=INVOKE, invoker=model, identity="test-model",
                          outputs_uri=str(tmp_path / name), cache=cache, max_concurrency=concurrency, policy=FAST)


def test_one_call_per_record_and_stats(tmp_path):
    model = CountingModel()
    rows, stats = run(records(20), model, tmp_path, concurrency=4)
    assert len(model.calls) == 20 == stats.invocations == len(set(model.calls))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(20)]
    assert all(r["output"] == f"answer {i}" for i, r in enumerate(rows))
    summary = stats.summary()
    assert summary["errors"] == 0 and summary["latency_p50_s"] is not None
    assert summary["generated_tokens"] == 40


def test_transient_errors_are_retried_permanent_ones_recorded(tmp_path):
    rows_in = records(3) + [{"id": "bad", "model_input": "permanent", "target_output": "x"}]
    model = CountingModel(transient={"Q: question 1": 2})
    rows, stats = run(rows_in, model, tmp_path)
    assert rows[1]["output"] == "answer 1" and rows[1]["attempts"] == 3
    assert rows[3]["output"] is None and "HTTP 400" in rows[3]["error"]
    assert stats.errors == 1 and stats.invocations == 4 and stats.attempts == 6


def test_retries_give_up(tmp_path):
    model = CountingModel(transient={"Q: question 0": 99})
    rows, stats = run(records(1), model, tmp_path)
    assert "gave up after 4 attempts" in rows[0]["error"] and stats.errors == 1


def test_failed_record_is_scored_as_failed_not_dropped(tmp_path):
    rows = [{"id": "a", "model_input": "q", "target_output": "Paris", "output": "Paris", "error": None},
            {"id": "b", "model_input": "q", "target_output": "Rome", "output": None, "error": "HTTP 500"}]
    algorithm = {"name": "FactualKnowledge", "module": "fmeval.eval_algorithms.factual_knowledge",
                 "config_class": "FactualKnowledgeConfig", "eval_name": "factual_knowledge",
                 "options": {"target_output_delimiter": "<OR>"}}
    result = score_outputs(algorithm, rows)
    assert result["scores"]["factual_knowledge"] == 0.5
    assert result["failed_records"] == 1 and len(result["per_record"]) == 2


def test_killed_run_resumes_without_repeating_a_call(tmp_path):
    first = CountingModel(fail_after=7)
    with pytest.raises(KeyboardInterrupt):
        run(records(12), first, tmp_path)
    written = storage.read_jsonl(str(tmp_path / "outputs.jsonl"))
    assert len(written) == 7  # every finished record was on disk when the run died
    # a torn last line (killed mid-write) must not break the resume
    with open(tmp_path / "outputs.jsonl", "a") as fh:
        fh.write('{"id": "r7", "outp')
    second = CountingModel()
    rows, stats = run(records(12), second, tmp_path)
    assert set(first.calls).isdisjoint(second.calls)
    assert len(second.calls) == 5 and stats.resumed == 7 and stats.invocations == 5
    assert [r["output"] for r in rows] == [f"answer {i}" for i in range(12)]
    lines = (tmp_path / "outputs.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line) for line in lines)


def test_cache_serves_another_run_and_another_config(tmp_path):
    cache = OutputCache(str(tmp_path / "cache"))
    first = CountingModel()
    run(records(5), first, tmp_path, cache=cache, name="a.jsonl")
    second = CountingModel()
    rows, stats = run(records(5), second, tmp_path, cache=cache, name="b.jsonl")
    assert second.calls == [] and stats.invocations == 0 and stats.cached == 5
    assert rows[4]["output"] == "answer 4"
    changed = dict(INVOKE, inference_parameters={"max_new_tokens": 9})  # another request: a miss
    third = CountingModel()
    invoke_records(records(5), invoke=changed, invoker=third, identity="test-model",
                   outputs_uri=str(tmp_path / "c.jsonl"), cache=cache, policy=FAST)
    assert len(third.calls) == 5
    cache.close()
    # one file per model and request setup, never one per record
    stored = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert [p.parent.name for p in stored] == ["answers", "answers"]
    assert sorted(len(p.read_text().splitlines()) for p in stored) == [5, 5]
    # another process's view of the cache (a new instance) is served the same answers
    fourth = CountingModel()
    rows, stats = run(records(5), fourth, tmp_path, cache=OutputCache(str(tmp_path / "cache")), name="d.jsonl")
    assert fourth.calls == [] and stats.cached == 5 and rows[2]["output"] == "answer 2"


def test_request_body_and_answer_follow_the_sample():
    body = build_body({**INVOKE, "content_template": [[{"role": "user", "content": "PROMPT_PLACEHOLDER"}]]},
                      'say "hi"')
    assert body == {"inputs": [[{"role": "user", "content": 'say "hi"'}]], "parameters": {"max_new_tokens": 8}}
    answer = read_answer({"output": "[0].generation.content"}, [{"generation": {"content": " Paris "}}])
    assert answer.text == "Paris"
    with pytest.raises(PermanentError):
        read_answer({"output": "[0].nothing"}, [{"generated_text": "x"}])
    assert make_prompt("A $x: $model_input", "Q") == "A $x: Q"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["$", "$$", "model_input", "{", "}", "x", " ", "_", "Model_Input", "é\n"]),
                max_size=12).map("".join),
       st.text(alphabet="ab$ {}\\", max_size=6))
def test_a_prompt_is_what_string_templates_safe_substitute_makes(template, model_input):
    # the template read once, then filled for each record: the same prompt, `$$`, `${model_input}`, a lone `$`,
    # other names and an input holding `$` included
    assert make_prompt(template, model_input) == Template(template).safe_substitute(model_input=model_input)


def test_resume_does_not_reuse_answers_to_another_prompt(tmp_path):
    run(records(3), CountingModel(), tmp_path)
    other = dict(INVOKE, prompt_template="Answer briefly: $model_input")
    model = CountingModel()
    rows, stats = invoke_records(records(3), invoke=other, invoker=model, identity="test-model",
                                 outputs_uri=str(tmp_path / "outputs.jsonl"), cache=None, policy=FAST)
    assert len(model.calls) == 3 and stats.resumed == 0
    assert all(r["prompt"].startswith("Answer briefly") for r in rows)
