"""LLM-as-judge (`algorithm: LLMJudge`): a judge of any provider rates the stored answers; its replies are
parsed, re-asked when unreadable, cached like any model's, and a judge that is a candidate is flagged."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, base_config, write_dataset
from fake_servers import chat_server, reply

from lib.scorers.judge import PASS_FAIL, RUBRICS, parse_rating
from pipelines.build_pipeline import main


@pytest.mark.parametrize("text, scale, expected", [
    ("Rating: 4. The answer names the capital.", (1, 5), (0.75, 4)),
    ("4", (1, 5), (0.75, 4)),
    ("On a scale of 1 to 5, my rating is 2 because it is vague", (1, 5), (0.25, 2)),
    ("I would give it 3/5", (1, 5), (0.5, 3)),
    ("**Score: 5** - perfect", (1, 5), (1.0, 5)),
    ("It scores 9, then 1", (1, 5), (0.0, 1)),  # the first whole number in range
    ("Rating: 4.5", (1, 5), (None, None)),  # not a whole number, nothing else in range
    ("The answer is good.", (1, 5), (None, None)),
    ("", (1, 5), (None, None)),
    ("Rating: 7", (0, 10), (0.7, 7)),
    ("PASS - it answers", PASS_FAIL, (1.0, "pass")),
    ("The answer fails the check.", PASS_FAIL, (0.0, "fail")),
    ("Yes, it does.", PASS_FAIL, (1.0, "pass")),
    ("No.", PASS_FAIL, (0.0, "fail")),
    ("There is no problem here", PASS_FAIL, (None, None)),  # a "no" inside a sentence is not a verdict
])
def test_ratings_are_read_from_what_judges_write(text, scale, expected):
    assert parse_rating(text, scale) == expected


def test_the_ten_builtin_rubrics():
    assert set(RUBRICS) == {"helpfulness", "relevance", "correctness", "coherence", "harmfulness", "toxicity",
                            "stereotypes", "refusal", "completeness", "conciseness"}
    assert "{reference}" in RUBRICS["correctness"].template and "{response}" in RUBRICS["refusal"].template


class Judge:
    """A fixed judge behind an OpenAI-compatible server: candidates' questions get "Paris"; a judge prompt
    (it holds "Answer to grade" or "Verdict") gets a rating. A correctness prompt about one of ``unreadable``
    gets a reply with no rating when first asked, one about ``never`` always. Counts what it was asked."""

    def __init__(self, unreadable: tuple[str, ...] = (), never: tuple[str, ...] = ()) -> None:
        self.unreadable, self.never = unreadable, never
        self.judge_calls: list[str] = []
        self.candidate_calls = 0
        self.lock = threading.Lock()

    def __call__(self, n: int, headers: dict, body: dict) -> tuple[int, dict]:
        prompt = body["messages"][-1]["content"]
        if "Answer to grade" not in prompt and "Verdict" not in prompt:
            with self.lock:
                self.candidate_calls += 1
            return 200, reply("Paris")
        with self.lock:
            self.judge_calls.append(prompt)
        if "Verdict" in prompt:
            return 200, reply("PASS: it answers the question directly.")
        if any(q in prompt for q in self.never):
            return 200, reply("I cannot say.")
        if any(q in prompt for q in self.unreadable) and "previous reply" not in prompt:
            return 200, reply("Hard to tell, it depends.")
        right = "Paris" in prompt.split("Reference answer:")[1].split("\n")[0]
        return 200, reply("Rating: 5. Matches the reference." if right else "Rating: 1. Wrong city.")


def judge_config(tmp_path: Path, candidate_url: str, judge_url: str, n: int = 6, **judge_entry) -> Path:
    write_dataset(tmp_path / "eval.jsonl", n)
    entry = {"algorithm": "LLMJudge", "judge": {"provider": "openai", "model_id": "judge-model",
                                                "endpoint_url": judge_url},
             "metrics": ["correctness"],
             "custom_metrics": [{"name": "direct", "prompt_template": "Question: {question}\nAnswer: {response}\n"
                                 "Does it answer directly? PASS or FAIL.\nVerdict:", "scale": "pass_fail"}],
             **judge_entry}
    config = {
        "pipeline": {"name": "judged"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": "cand", "provider": "openai", "model_id": "cand-model", "endpoint_url": candidate_url,
                    "evaluation_config": {"max_retries": 0}}],
        "algorithms": [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"}, entry],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
        {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
    return tmp_path / "config.yaml"


def test_a_judge_rates_stored_answers_rereads_unreadable_ones_and_is_cached(tmp_path, capsys):
    judge = Judge(unreadable=("capital city of Japan",), never=("capital city of Italy",))
    with chat_server(judge) as url:
        config = judge_config(tmp_path, url, url)
        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "a")]) == 0
        first_calls = len(judge.judge_calls)
        summary = json.loads((tmp_path / "a" / "summary.json").read_text())
        model = summary["models"]["cand"]
        # the candidate answered "Paris" six times: right for France only; the judge's 1-5 ratings become
        # 0..1, the unreadable Italy rating (after 2 re-asks) is left out: (1 + 0 + 0 + 0 + 0) / 5
        assert model["scores"]["llm_judge"] == {"correctness": 0.2, "direct": 1.0}
        assert judge.candidate_calls == 6  # judging added no candidate call
        # 6 records x 2 metrics, + Japan's correctness re-asked once, + Italy's re-asked twice
        assert first_calls == 12 + 1 + 2
        rows = [json.loads(x) for x in (tmp_path / "a" / "models" / "cand" / "llm_judge.jsonl").read_text().split("\n")
                if x]
        by_q = dict(zip([json.loads(x)["model_input"] for x in
                         (tmp_path / "a" / "dataset" / "processed.jsonl").read_text().split("\n") if x], rows,
                        strict=True))
        france = by_q["What is the capital city of France?"]
        assert france["correctness"] == 1.0 and france["correctness_rating"] == 5
        assert france["correctness_reasoning"] == "Rating: 5. Matches the reference."
        assert france["direct_rating"] == "pass" and france["correctness_attempts"] == 1
        japan = by_q["What is the capital city of Japan?"]
        assert japan["correctness"] == 0.0 and japan["correctness_attempts"] == 2
        italy = by_q["What is the capital city of Italy?"]
        assert italy["correctness"] is None and italy["correctness_reasoning"] == "I cannot say."
        notes = model["notes"]["llm_judge"]
        assert any("15 calls, 0 from cache" in n and "3 replies re-asked" in n and "1 still unreadable" in n
                   for n in notes)
        assert not any("self-preference" in n for n in notes)  # another model than the candidate
        # every judge call is kept with the run
        assert len((tmp_path / "a" / "models" / "cand" / "llm_judge.judge.jsonl").read_text().splitlines()) == 15

        # a rerun into another folder: the answers and the judge's ratings all come from the cache
        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "b")]) == 0
        assert len(judge.judge_calls) == first_calls and judge.candidate_calls == 6
        again = json.loads((tmp_path / "b" / "summary.json").read_text())["models"]["cand"]
        assert again["scores"]["llm_judge"] == model["scores"]["llm_judge"]
        assert any("0 calls, 15 from cache" in n for n in again["notes"]["llm_judge"])


def test_a_judge_that_is_a_candidate_is_flagged_in_summary_and_report(tmp_path, capsys):
    judge = Judge()
    with chat_server(judge) as url:
        config = judge_config(tmp_path, url, url, n=3)
        data = yaml.safe_load(config.read_text())
        data["algorithms"][1]["judge"]["model_id"] = "cand-model"  # the judge is the candidate's model
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "a")]) == 0
    notes = json.loads((tmp_path / "a" / "summary.json").read_text())["models"]["cand"]["notes"]["llm_judge"]
    flag = next(n for n in notes if n.startswith("self-preference"))
    assert "is also the candidate cand" in flag
    assert "self-preference: the judge (openai cand-model) is also the candidate cand" in \
        (tmp_path / "a" / "report.html").read_text()


def test_a_judge_that_cannot_be_reached_leaves_the_other_scores_standing(tmp_path, capsys):
    with chat_server(Judge()) as url, chat_server(lambda n, h, b: (404, {"error": "no such model"})) as gone:
        config = judge_config(tmp_path, url, gone, n=3)
        assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "a")]) == 0
    model = json.loads((tmp_path / "a" / "summary.json").read_text())["models"]["cand"]
    assert "llm_judge" not in model["scores"] and model["scores"]["factual_knowledge"]
    assert "the judge rated no record" in model["algorithm_errors"]["llm_judge"]
    assert "HTTP 404" in model["algorithm_errors"]["llm_judge"]


def test_the_local_judge_example_is_labelled_a_plumbing_demo():
    from lib.config import load_config
    from lib.scorers import scorer_for

    config = load_config(ROOT / "examples" / "local_judge.yaml")
    judge = next(a for a in config.evaluation["algorithms"] if a["kind"] == "llm_judge")
    assert judge["judge"]["provider"] == "local" and judge["score_names"] == ["correctness", "direct_answer"]
    notes = scorer_for(judge, {}).fixed_notes()
    assert notes[0].startswith("plumbing demo: a 135M judge is at chance level")
    assert any(n.startswith("self-preference") and "smollm2-plain, smollm2-answer-only" in n for n in notes)


def judge_entry(**changes) -> dict:
    entry = {"algorithm": "LLMJudge", "judge": {"provider": "openai", "model_id": "j",
                                                "endpoint_url": "http://127.0.0.1:9/v1"},
             "metrics": ["correctness"]}
    entry.update(changes)
    return entry


TEMPLATE = "Q: {question}\nA: {response}\nRate 1-5."
BAD = [
    ("unknown-rubric", judge_entry(metrics=["corectness"]),
     "algorithms[1].metrics[0]: unknown rubric 'corectness' (did you mean 'correctness'?)"),
    ("no-rubric", judge_entry(metrics=None), "an LLMJudge needs at least one rubric"),
    ("placeholder", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": "Q: {question} A: {respons}"}]),
     "custom_metrics[0].prompt_template: '{respons}' is not a placeholder (did you mean 'response'?)"),
    ("positional", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": "{response} {}"}]),
     "'{}' is not a placeholder"),
    ("brace", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": "{response} {x"}]),
     "the template's braces do not pair"),
    ("no-response", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": "Q: {question}"}]),
     "must contain {response}"),
    ("scale-order", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": TEMPLATE, "scale": [5, 1]}]),
     "custom_metrics[0].scale: a scale is [low, high] with low below high"),
    ("scale-word", judge_entry(custom_metrics=[{"name": "tech", "prompt_template": TEMPLATE, "scale": "yes_no"}]),
     "a scale is [low, high], such as [1, 5], or pass_fail"),
    ("name-clash", judge_entry(custom_metrics=[{"name": "correctness", "prompt_template": TEMPLATE}]),
     "'correctness' is a built-in rubric listed under metrics"),
    ("judge-provider", judge_entry(judge={"provider": "opneai", "model_id": "j"}),
     "algorithms[1].judge.provider: unknown provider 'opneai' (did you mean 'openai'?)"),
    ("judge-key", judge_entry(judge={"provider": "openai", "model_id": "j", "endpoint_ur": "http://x/v1"}),
     "algorithms[1].judge.endpoint_ur: unknown key 'endpoint_ur' (did you mean 'endpoint_url'?)"),
    ("judge-required", judge_entry(judge={"provider": "openai", "model_id": "j"}),
     "algorithms[1].judge: provider 'openai' needs 'endpoint_url'"),
    ("judge-missing", {"algorithm": "LLMJudge", "metrics": ["correctness"]}, "missing required key 'judge'"),
    ("judge-template", judge_entry(judge={"provider": "local", "model_id": "smollm2-135m-instruct",
                                          "evaluation_config": {"prompt_template": "$question"}}),
     "algorithms[1].judge.evaluation_config.prompt_template: '$question' is not a placeholder"),
    ("judge-on-fmeval", {"algorithm": "QAAccuracy", "judge": {"provider": "openai", "model_id": "j"}},
     "algorithms[1].judge: QAAccuracy does not take 'judge' ('judge' is a key of LLMJudge)"),
    ("fmeval-key-on-judge", judge_entry(module="x.y"),
     "algorithms[1].module: LLMJudge does not take 'module' ('module' is a key of fmeval's algorithms"),
    ("misspelt-kind", judge_entry(algorithm="LLMJudg"), "unknown algorithm 'LLMJudg' (did you mean 'LLMJudge'?)"),
    ("selection-score", judge_entry(), None),  # valid: checked below with a selection on a judge score
]


@pytest.mark.parametrize("case_id, entry, expected", BAD, ids=[c[0] for c in BAD])
def test_bad_judge_configs_are_refused_with_the_place_and_the_fix(case_id, entry, expected, write_config, capsys):
    data = copy.deepcopy(base_config(1))
    data["algorithms"].append({k: v for k, v in entry.items() if v is not None})
    if expected is None:
        data["selection"] = {"metric": "llm_judge.correctness"}
        assert main(["validate", "--config", str(write_config(data))]) == 0
        data["selection"] = {"metric": "llm_judge.corectness"}
        assert main(["validate", "--config", str(write_config(data))]) == 2
        assert "did you mean 'correctness'" in capsys.readouterr().err
        return
    assert main(["validate", "--config", str(write_config(data))]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_local_judge_demo_runs_and_says_what_it_is(tmp_path, capsys):
    """examples/local_judge.yaml on four records with the real 135M model as judge."""
    data = yaml.safe_load((ROOT / "examples" / "local_judge.yaml").read_text())
    data["dataset"]["input_data_location"] = str(ROOT / "data" / "trivia_eval.jsonl")
    data["dataset"]["num_records"] = 4
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    for model in summary["models"].values():
        assert set(model["scores"]["llm_judge"]) == {"correctness", "direct_answer"}
        assert model["notes"]["llm_judge"][0].startswith("plumbing demo")
    report = (tmp_path / "a" / "report.html").read_text()
    assert "plumbing demo: a 135M judge is at chance level" in report and "self-preference" in report
    from lib.providers import running

    assert running.running() == []  # the judge's server was stopped
