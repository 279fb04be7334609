"""Custom scorers (`algorithm: CustomScorer`): your own function or class by import path, and the presets
(exact match, F1, BLEU, ROUGE) computed by maintained libraries."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, base_config, write_dataset
from fake_servers import chat_server, reply

from lib.scorers.presets import PRESETS
from pipelines.build_pipeline import main


class KeywordScorer:
    """A scorer class of a user's own (used by import path below): built once with the entry's config."""

    score_names = ("mentions", "length")

    def __init__(self, word: str = "Paris") -> None:
        self.word = word

    def score(self, record: dict) -> dict:
        if record["model_output"] == "boom":
            raise ValueError("cannot score this one")
        return {"mentions": float(self.word.lower() in record["model_output"].lower()),
                "length": len(record["model_output"]) / 100}


def preset(name: str, output: str, target: str) -> dict[str, float]:
    _, fn = PRESETS[name]
    return fn({"model_input": "q", "model_output": output, "target_output": target})


def close(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-4) for k in a)


# values worked out by hand from each metric's definition
KNOWN = [
    ("exact_match", "Paris", "Paris", {"exact_match": 1.0, "quasi_exact_match": 1.0}),
    ("exact_match", "paris.", "Paris", {"exact_match": 0.0, "quasi_exact_match": 1.0}),  # case, punctuation
    ("exact_match", "Roma", "Rome<OR>Roma", {"exact_match": 1.0, "quasi_exact_match": 1.0}),  # any accepted answer
    ("exact_match", "It is Paris", "Paris", {"exact_match": 0.0, "quasi_exact_match": 0.0}),
    # "the" is dropped by normalisation: {capital, is, paris} against {paris}: P 1/3, R 1, F1 0.5
    ("f1", "the capital is Paris", "Paris", {"f1": 0.5, "precision": 1 / 3, "recall": 1.0}),
    ("f1", "Lyon", "Paris", {"f1": 0.0, "precision": 0.0, "recall": 0.0}),
    # ROUGE-1: 1 of 4 words, all of the 1-word target: F = 2 * 0.25 * 1 / 1.25 = 0.4; no shared bigram
    ("rouge", "the capital is Paris", "Paris", {"rouge1": 0.4, "rouge2": 0.0, "rougeL": 0.4}),
    # the stemmer makes "cats" and "cat" one word: 2 of 3 words, 1 of 2 bigrams, LCS 2
    ("rouge", "the cats sat", "the cat lay", {"rouge1": 2 / 3, "rouge2": 0.5, "rougeL": 2 / 3}),
    ("bleu", "the cat sat on the mat", "the cat sat on the mat", {"bleu": 1.0}),
    # p1 5/6, p2 3/5, p3 1/4, p4 0/3 smoothed to 0.1/3; same length: (5/6 * 3/5 * 1/4 * 1/30) ** (1/4)
    ("bleu", "the cat sat on the mat", "the cat is on the mat", {"bleu": (5 / 6 * 3 / 5 * 1 / 4 * 1 / 30) ** 0.25}),
    ("bleu", "Paris", "Paris", {"bleu": 1.0}),  # a one-word answer is scored on unigrams
    ("bleu", "", "Paris", {"bleu": 0.0}),
]


@pytest.mark.parametrize("name, output, target, expected", KNOWN)
def test_presets_give_the_known_values(name, output, target, expected):
    got = preset(name, output, target)
    assert close(got, expected), got
    assert set(got) == set(PRESETS[name][0])


def test_a_custom_scorer_and_a_preset_by_config_end_to_end(tmp_path):
    """The CLI as a user runs it: a class of the user's own by import path, the shipped function, a preset."""
    write_dataset(tmp_path / "eval.jsonl", 4)
    answers = {1: "Paris", 2: "It is Tokyo, the capital of Japan", 3: "boom", 4: "Tokyo"}
    config = {
        "pipeline": {"name": "custom"},
        "dataset": {"dataset_name": "trivia", "input_data_location": "eval.jsonl",
                    "model_input_key": "question", "target_output_key": "answer"},
        "models": [{"name": "cand", "provider": "openai", "model_id": "m", "endpoint_url": "URL",
                    "evaluation_config": {"max_concurrency": 1}}],
        "algorithms": [
            {"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"},
            {"algorithm": "CustomScorer", "scorer": "test_custom_scorers:KeywordScorer", "name": "keyword",
             "config": {"word": "tokyo"}},
            {"algorithm": "CustomScorer", "scorer": "examples.scorers:brevity"},
            {"algorithm": "CustomScorer", "preset": "rouge"},
        ],
        "selection": {"metric": "keyword.mentions"},
    }
    with chat_server(lambda n, h, b: (200, reply(answers[n]))) as url:
        config["models"][0]["endpoint_url"] = url
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
        proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / "build_pipeline.py"), "run", "--config",
                               str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
    # France "Paris", Japan "It is Tokyo, the capital of Japan", Italy "boom" (raises: 0), Canada "Tokyo"
    keyword = model["scores"]["keyword"]
    assert keyword["mentions"] == 0.5  # (0 + 1 + 0 + 1) / 4
    assert math.isclose(keyword["length"], (5 + len(answers[2]) + 0 + 5) / 100 / 4, abs_tol=1e-6)
    assert "1 of 4 records raised in the scorer and score 0 (first: ValueError: cannot score this one)" in \
        model["notes"]["keyword"][0]
    assert model["scores"]["brevity"] == {"brevity": 0.75}  # Japan's answer has seven words
    assert set(model["scores"]["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    # ROUGE-1 F: France 1; Japan 1 of 7 words, all of "Tokyo": 2 * (1/7) / (1 + 1/7) = 0.25; the others 0
    assert model["scores"]["rouge"]["rouge1"] == pytest.approx((1 + 0.25 + 0 + 0) / 4, abs=1e-4)
    rows = [json.loads(x) for x in (tmp_path / "run" / "models" / "cand" / "keyword.jsonl").read_text().splitlines()]
    assert rows[1]["mentions"] == 1.0 and rows[2]["failed"] and "cannot score" in rows[2]["error"]
    assert json.loads((tmp_path / "run" / "selection.json").read_text())["metric"] == "keyword.mentions"


def test_the_default_config_shows_a_custom_scorer_beside_fmeval():
    from lib.config import load_config

    algorithms = load_config(ROOT / "evaluation_config.yaml").evaluation["algorithms"]
    kinds = {a["name"]: a["kind"] for a in algorithms}
    assert kinds["FactualKnowledge"] == "fmeval" and kinds["CustomScorer"] == "custom"
    custom = next(a for a in algorithms if a["kind"] == "custom")
    assert custom["eval_name"] == "brevity" and custom["options"]["scorer"] == "examples.scorers:brevity"


BAD = [
    ("not-importing", {"algorithm": "CustomScorer", "scorer": "no_such_pkg.scorers:score"},
     "algorithms[1].scorer: the module 'no_such_pkg.scorers' does not import: ModuleNotFoundError"),
    ("no-such-function", {"algorithm": "CustomScorer", "scorer": "examples.scorers:brevty"},
     "the module 'examples.scorers' has no 'brevty' (did you mean 'brevity'?)"),
    ("not-a-path", {"algorithm": "CustomScorer", "scorer": "brevity"}, "'brevity' is not an import path"),
    ("not-callable", {"algorithm": "CustomScorer", "scorer": "lib.scorers.presets:DEFAULT_DELIMITER"},
     "is a str, not a function or class"),
    ("both", {"algorithm": "CustomScorer", "scorer": "examples.scorers:brevity", "preset": "f1"},
     "takes either 'scorer'"),
    ("neither", {"algorithm": "CustomScorer"}, "takes either 'scorer'"),
    ("unknown-preset", {"algorithm": "CustomScorer", "preset": "rouge1"},
     "algorithms[1].preset: 'rouge1' is not allowed (did you mean 'rouge'?)"),
    ("preset-config", {"algorithm": "CustomScorer", "preset": "f1", "config": {"x": 1}}, "takes no config"),
    ("judge-key", {"algorithm": "CustomScorer", "preset": "f1", "metrics": ["correctness"]},
     "CustomScorer does not take 'metrics' ('metrics' is a key of LLMJudge)"),
    ("misspelt-key", {"algorithm": "CustomScorer", "scorr": "examples.scorers:brevity"},
     "unknown key 'scorr' (did you mean 'scorer'?)"),
    ("bad-name", {"algorithm": "CustomScorer", "preset": "f1", "name": "My Score"},
     "a score name has lowercase letters, digits and underscores"),
    ("twice", {"algorithm": "CustomScorer", "preset": "f1", "name": "factual_knowledge"},
     "is listed twice (both name their scores 'factual_knowledge'"),
    ("score-name", {"algorithm": "CustomScorer", "preset": "rouge"}, None),
]


@pytest.mark.parametrize("case_id, entry, expected", BAD, ids=[c[0] for c in BAD])
def test_bad_custom_scorer_configs_are_refused(case_id, entry, expected, write_config, capsys):
    data = copy.deepcopy(base_config(1))
    data["algorithms"].append(entry)
    if expected is None:  # a selection on a preset's score is checked against the preset's names
        data["selection"] = {"metric": "rouge.rougeL"}
        assert main(["validate", "--config", str(write_config(data))]) == 0
        data["selection"] = {"metric": "rouge.rouge_l"}
        assert main(["validate", "--config", str(write_config(data))]) == 2
        assert "rouge reports no score 'rouge_l'" in capsys.readouterr().err
        return
    assert main(["validate", "--config", str(write_config(data))]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err
