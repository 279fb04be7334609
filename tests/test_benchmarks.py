"""Benchmark suites (`dataset.benchmark`): answers read out of what models write, the public suites' file
layouts (local and S3), the config's checks, `evaluate_base_model`, and our tiny suites end to end."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from fake_servers import chat_server, reply

from lib.benchmarks.data import processed_records, read_items
from lib.benchmarks.extract import extract_letter, extract_number, format_number, reference_number, same_number
from lib.benchmarks.suites import SUITES
from lib.providers.openai import OpenAIInvoker, OpenAIProvider
from pipelines.build_pipeline import main

TINY_MMLU = ROOT / "data" / "benchmarks" / "tiny-mmlu.jsonl"
TINY_GSM8K = ROOT / "data" / "benchmarks" / "tiny-gsm8k.jsonl"
CHOICES = ["Paris", "London", "Rome", "Berlin"]

# --- reading the letter ---------------------------------------------------------------------------------

LETTERS = [
    ("B", "B"), ("b", "B"), (" C \n", "C"), ("D.", "D"), ("(A)", "A"), ("[c]", "C"), ("**B**", "B"), ("'D'", "D"),
    ("The answer is B.", "B"), ("The answer is (C)", "C"), ("Answer: d", "D"), ("answer: **A**", "A"),
    ("The correct answer is: B) London", "B"), ("I believe the answer would be C.", "C"),
    ("The answer to this question is D.", "D"), ("Final answer: (a)", "A"),
    ("A is wrong and C is wrong, so the answer is B", "B"),  # the answer phrase beats lone letters
    ("The answer is B. Option A is tempting but wrong.", "B"),
    ("Answer: A\nAnswer: C", "C"),  # the last answer phrase
    ("Option C is correct.", "C"), ("choice (b) is right", "B"), ("D is the correct answer", "D"),
    ("B. London", "B"), ("(C) Rome", "C"), ("d) Berlin", "D"), ("A: Paris", "A"), ("C Rome", "C"),
    ("A Paris", "A"),  # an opening "A" followed by choice A's text
    ("I think it is (B) because London is big.", "B"), ("It must be C) Rome", "C"),
    ("Paris", "A"), ("rome.", "C"), ("The capital is Berlin.", "D"), ("It's London, I think", "B"),
    ("I think C.", "C"), ("So the best pick here: D", "D"),
    # no answer, or several
    ("", None), ("   ", None), (None, None), ("I don't know.", None), ("A or B", None), ("A planet", None),
    ("The answer is a planet", None),  # the article, not a label
    ("Paris or London", None), ("E", None), ("The answer is E.", None),  # only A-D are choices
    ("B and C are both plausible", None), ("Washington, D.C. and B", None),
    ("The answer depends on the context.", None),
]


@pytest.mark.parametrize("text, expected", LETTERS)
def test_the_letter_is_read_from_what_models_write(text, expected):
    assert extract_letter(text, CHOICES) == expected


def test_the_valid_letters_follow_the_number_of_choices():
    assert extract_letter("E", 5) == "E" and extract_letter("E", 4) is None
    assert extract_letter("The answer is (J).", 10) == "J"
    assert extract_letter("C", 2) is None and extract_letter("b", 2) == "B"
    # a choice inside another found one is not an answer of its own: "Paris, Texas" picks B
    assert extract_letter("It is Paris, Texas.", ["Paris", "Paris, Texas", "Austin", "Dallas"]) == "B"
    # numbers as choices: the whole answer must be one of them
    assert extract_letter("56", ["54", "56", "58", "64"]) == "B"
    assert extract_letter("7 x 8 = 56", ["54", "56", "58", "64"]) == "B"
    assert extract_letter("54 or 56", ["54", "56", "58", "64"]) is None


# --- reading the number ---------------------------------------------------------------------------------

NUMBERS = [
    ("42", 42), ("#### 72", 72), ("She pays 3 * 4 = 12 dollars.\n#### 12", 12), ("#### 1,234", 1234),
    ("The answer is 18.", 18), ("The answer is $18.", 18), ("The answer is: $1,200.50", 1200.5),
    ("The final answer is **7**", 7), ("\\boxed{42}", 42), ("so $x = \\boxed{-3}$", -3),
    ("5 + 3 = 8", 8), ("The answer is 5 + 3 = 8", 8),  # a calculation going on from the phrase: its result
    ("It costs 3.50.", 3.5), ("She has -5 dollars", -5), ("lost −3 points", -3), ("+4 degrees", 4),
    ("x − 7", 7),  # a minus sign set apart is an operator, not a sign
    ("12 apples. 5-3=2", 2), ("1,000,000 people", 1_000_000), ("1,2,3", 3), ("about 50%", 50),
    ("It was the 3rd day and he had 20 left", 20), ("version 1.2.3 has 9 bugs", 9), (".5 litres", 0.5),
    ("£40 in total", 40), ("€7.25", 7.25),
    ("The answer is 260 kilometres. Check: 180 + 80 = 260", 260), ("The answer is 14, since 12 + 2 = 14", 14),
    ("", None), (None, None), ("no number here", None), ("#### unknown", None),
]


@pytest.mark.parametrize("text, expected", NUMBERS)
def test_the_final_number_is_read_from_what_models_write(text, expected):
    got = extract_number(text)
    assert (got is None and expected is None) or same_number(got, expected), got


@pytest.mark.parametrize("value, expected", [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72", 72),
    ("#### 1,000", 1000), ("#### -7", -7), ("#### 12.5", 12.5), ("72", 72), ("1,234", 1234), ("3.5.", 3.5),
    (72, 72), (2.5, 2.5), (True, None), ("about 72", None), ("", None), (None, None), (float("nan"), None),
])
def test_a_reference_answer_is_a_number_or_a_solution_ending_in_hashes(value, expected):
    got = reference_number(value)
    assert (got is None and expected is None) or same_number(got, expected)


def test_numbers_compare_and_print_as_answers():
    assert same_number(18.0, 18) and same_number(0.1 + 0.2, 0.3) and not same_number(18, 18.5)
    assert not same_number(None, 1)
    assert [format_number(v) for v in (72.0, -3.5, 1234567.0, 0.1, 1e-05, 1 / 3, None)] == [
        "72", "-3.5", "1234567", "0.1", "0.00001", "0.3333333333333333", None]
    math = SUITES["gsm8k"]  # no rounding between the answer read and the comparison
    assert math.extract("x = 1.66666666666666", {}) == "1.66666666666666"
    assert not math.correct("1.66666666666666", {"answer": "1.666667"}) and math.correct("18.00", {"answer": "18"})


# --- the suites' file layouts ---------------------------------------------------------------------------

MMLU = {"suite": "mmlu", "columns": {"question": "question", "choices": None, "answer": "answer",
                                     "subtask": "subject"}}
GSM8K = {"suite": "gsm8k", "columns": {"question": "question", "answer": "answer", "subtask": None}}


def test_our_tiny_suites_read_with_their_subtasks_and_answers():
    items, subtasks = read_items(str(TINY_MMLU), MMLU)
    assert len(items) == 20 and subtasks == ["astronomy", "high_school_chemistry", "elementary_mathematics",
                                             "high_school_geography"]
    assert all(sum(i["subtask"] == s for i in items) == 5 for s in subtasks)
    assert sorted(i["answer"] for i in items) == ["A"] * 5 + ["B"] * 5 + ["C"] * 5 + ["D"] * 5  # balanced
    records = processed_records(str(TINY_MMLU), MMLU)
    first = records[0]
    assert first["target_output"] == "B" and first["benchmark"]["choices"][1] == "Mercury"
    assert first["model_input"] == (
        "The following is a multiple choice question about astronomy. Answer with the letter of the correct "
        "choice (A, B, C or D).\n\nWhich planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Earth\nD. Mars\n"
        "Answer:")
    math = processed_records(str(TINY_GSM8K), GSM8K)
    assert [r["target_output"] for r in math] == ["14", "260", "26", "1000", "-7", "20", "65", "114", "12.5", "672"]
    assert math[0]["model_input"].endswith("How much does she spend in total, in dollars?\nAnswer:")
    assert "'####'" in math[0]["model_input"] and math[0]["benchmark"]["solution"].endswith("#### 14")


def test_mmlu_own_csv_folder_header_less_with_subjects_from_file_names(tmp_path, capsys):
    data = tmp_path / "test"
    data.mkdir()
    (data / "astronomy_test.csv").write_text(
        'What is the closest star to Earth?,Sirius,The Sun,"Alpha Centauri, A",Vega,B\n'
        '"Which planet has a moon named ""Titan""?",Mars,Jupiter,Saturn,Neptune,C\n')
    (data / "virology_test.csv").write_text("Which of these is a virus?,E. coli,Influenza,Yeast,Plasmodium,B\n")
    (data / "README.txt").write_text("not data")
    items, subtasks = read_items(str(data), MMLU)
    assert subtasks == ["astronomy", "virology"]
    assert items[0]["choices"] == ["Sirius", "The Sun", "Alpha Centauri, A", "Vega"] and items[0]["answer"] == "B"
    assert items[1]["question"] == 'Which planet has a moon named "Titan"?' and items[1]["answer"] == "C"
    # one file of the folder on its own: the split suffix still names the subject
    assert read_items(str(data / "virology_test.csv"), MMLU)[1] == ["virology"]
    only, _ = read_items(str(data), {**MMLU, "max_per_subtask": 1})
    assert [i["subtask"] for i in only] == ["astronomy", "virology"]
    # the folder as a config's benchmark: its subjects are scores, and `plan` counts its records for the cost
    config = bench_config(tmp_path)
    config["dataset"].update(input_data_location=str(data), benchmark={"suite": "mmlu"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan", "--json", "--config", str(tmp_path / "config.yaml")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["cost"]["local"]["records"] == 3
    evaluate = next(s for s in plan["steps"] if s["name"] == "evaluate-cand")
    assert evaluate["args"]["algorithms"][0]["score_names"] == ["accuracy", "accuracy.astronomy", "accuracy.virology"]


def test_hugging_face_and_other_layouts_with_a_column_mapping(tmp_path):
    # cais/mmlu saved as a JSON list (answer: a 0-based index); as JSON Lines under a .json name; lukaemon/mmlu's
    # columns (input, A-D, target); a CSV with a header; answers as letters, "(c)", indices, choice text
    rows = [{"question": "2 + 2?", "subject": "Elementary Mathematics", "choices": ["3", "4", "5", "6"], "answer": 1},
            {"question": "3 + 3?", "subject": "elementary_mathematics", "choices": ["6", "7", "8", "9"], "answer": "0"}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("list.json", "lines.json"):
        items, subtasks = read_items(str(tmp_path / name), MMLU)
        assert [i["answer"] for i in items] == ["B", "A"] and subtasks == ["elementary_mathematics"]
    (tmp_path / "luk.jsonl").write_text(json.dumps(
        {"input": "Red planet?", "A": "Mars", "B": "Venus", "C": "Earth", "target": "(a)"}) + "\n")
    columns = {"question": "input", "choices": ["A", "B", "C"], "answer": "target", "subtask": "subject"}
    items, _ = read_items(str(tmp_path / "luk.jsonl"), {"suite": "mmlu", "columns": columns})
    assert items == [{"question": "Red planet?", "choices": ["Mars", "Venus", "Earth"], "answer": "A", "subtask": None}]
    (tmp_path / "header.csv").write_text("question,A,B,C,D,answer,subject\nBiggest ocean?,Indian,Pacific,Arctic,"
                                         "Atlantic,Pacific,geography\n")
    items, subtasks = read_items(str(tmp_path / "header.csv"), MMLU)
    assert items[0]["answer"] == "B" and subtasks == ["geography"]


@pytest.mark.parametrize("content, name, expected", [
    ('{"question": "q", "choices": ["a", "b"], "answer": "C"}\n', "x.jsonl", "line 1: the answer 'C' is neither"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}\n', "x.jsonl", "the answer 2 is not the index"),
    ('{"question": "q", "choices": ["a"], "answer": 0}\n', "x.jsonl", "has 1 choices; a lettered question has 2"),
    ('{"question": "", "choices": ["a", "b"], "answer": 0}\n', "x.jsonl", "'question' (the question) is empty"),
    ('{"prompt": "q", "choices": ["a", "b"], "answer": 0}\n', "x.jsonl", "has no column 'question'"),
    ('{"question": "q", "choices": "a|b", "answer": 0}\n', "x.jsonl", "is not a list"),
    ('{"question": "q", "answer": 0}\n', "x.jsonl", "has neither a 'choices' column"),
    ("q,a,b\n", "x.csv", "3 columns are not the header-less MMLU layout"),
    ("q,a,b,c,d,A\nq2,a,b,c,A\n", "x.csv", "line 2 has 5 columns"),
    ("[1, 2]", "x.json", "item 1 is not a JSON object"),
    ("{not json\n", "x.jsonl", "line 1 is not valid JSON"),
    ("question,answer\n", "x.txt", "is not a .jsonl, .json or .csv file"),
])
def test_a_bad_row_is_named_by_file_and_line(tmp_path, content, name, expected):
    from lib.config.data_files import DataFileError

    (tmp_path / name).write_text(content)
    with pytest.raises(DataFileError) as info:
        read_items(str(tmp_path / name), MMLU)
    assert expected in str(info.value) and name in str(info.value)


def test_benchmark_data_from_s3_a_file_and_a_folder(tmp_path, monkeypatch):
    """Data in S3 is not read by validate (no AWS call before a config is valid) but by preprocess."""
    moto = pytest.importorskip("moto")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    from lib.config import load_evaluation_config
    from steps.preprocess import preprocess

    config = {"pipeline": {"name": "s3-bench"}, "models": [{"name": "m", "provider": "openai", "model_id": "x",
                                                            "endpoint_url": "http://127.0.0.1:9/v1"}],
              "dataset": {"dataset_name": "mmlu", "input_data_location": "s3://bench/mmlu/test",
                          "benchmark": {"suite": "mmlu", "subtasks": ["astronomy"]}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    ev = load_evaluation_config(path)  # nothing in S3 yet: validate does not look
    assert ev["dataset"]["benchmark"]["records"] is None
    assert ev["algorithms"][0]["score_names"] == ["accuracy", "accuracy.astronomy"]  # the subtasks listed
    with moto.mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="mmlu/test/astronomy_test.csv", Body=b"Closest star?,Vega,The Sun,Sirius,"
                      b"Rigel,B\nRed planet?,Mars,Venus,Earth,Moon,A\n")
        s3.put_object(Bucket="bench", Key="mmlu/test/virology_test.csv", Body=b"A virus?,Yeast,Flu,Mold,Algae,B\n")
        s3.put_object(Bucket="bench", Key="gsm8k/test.jsonl", Body=TINY_GSM8K.read_bytes())
        out = preprocess(ev["dataset"], None, str(tmp_path / "run"))
        rows = [json.loads(x) for x in (tmp_path / "run" / "dataset" / "processed.jsonl").read_text().splitlines()]
        assert out["records"] == 2 and [r["target_output"] for r in rows] == ["B", "A"]  # astronomy only
        assert {r["benchmark"]["subtask"] for r in rows} == {"astronomy"}
        math = processed_records("s3://bench/gsm8k/test.jsonl", GSM8K, limit=3)
        assert [r["target_output"] for r in math] == ["14", "260", "26"]


# --- the config -----------------------------------------------------------------------------------------

def bench_config(tmp_path: Path, **benchmark) -> dict:
    return {
        "pipeline": {"name": "bench"},
        "dataset": {"dataset_name": "tiny-mmlu", "input_data_location": str(TINY_MMLU),
                    "benchmark": {"suite": "mmlu", "name": "tiny_mmlu", **benchmark}},
        "models": [{"name": "cand", "provider": "openai", "model_id": "m", "endpoint_url": "http://127.0.0.1:9/v1"}],
    }


def gsm8k(d: dict) -> None:
    d["dataset"].update(input_data_location=str(TINY_GSM8K), benchmark={"suite": "gsm8k"})


BAD = [
    ("suite", lambda d: d["dataset"]["benchmark"].update(suite="mmul"),
     "dataset.benchmark.suite: 'mmul' is not allowed (did you mean 'mmlu'?)"),
    ("no-suite", lambda d: d["dataset"]["benchmark"].pop("suite"), "dataset.benchmark: missing required key 'suite'"),
    ("key-beside", lambda d: d["dataset"].update(model_input_key="question"),
     "dataset.model_input_key: a benchmark dataset takes no 'model_input_key'"),
    ("mime-beside", lambda d: d["dataset"].update(dataset_mime_type="csv"),
     "dataset.dataset_mime_type: a benchmark dataset takes no 'dataset_mime_type'"),
    ("column-misspelt", lambda d: d["dataset"]["benchmark"].update(columns={"questoin": "q"}),
     "dataset.benchmark.columns.questoin: unknown key 'questoin' (did you mean 'question'?)"),
    ("column-of-other-suite", lambda d: (gsm8k(d), d["dataset"]["benchmark"].update(columns={"choices": "c"})),
     "dataset.benchmark.columns.choices: a gsm8k benchmark has no column 'choices'"),
    ("choices-one-column", lambda d: d["dataset"]["benchmark"].update(columns={"choices": ["A"]}),
     "dataset.benchmark.columns.choices: choices are one column holding a list, or a list of 2-26 columns"),
    ("column-absent", lambda d: d["dataset"]["benchmark"].update(columns={"question": "input"}),
     "dataset.input_data_location: " + str(TINY_MMLU) + " line 1 has no column 'input' (the question)"),
    ("subtask-absent", lambda d: d["dataset"]["benchmark"].update(subtasks=["astronmy"]),
     "dataset.benchmark.subtasks[0]: no record of " + str(TINY_MMLU) + " is of the subtask 'astronmy' (did you mean "
     "'astronomy'?)"),
    ("subtask-twice", lambda d: d["dataset"]["benchmark"].update(subtasks=["astronomy", "Astronomy"]),
     "dataset.benchmark.subtasks[1]: the subtask 'astronomy' is listed twice"),
    ("subtask-empty-name", lambda d: d["dataset"]["benchmark"].update(subtasks=["--"]),
     'dataset.benchmark.subtasks[0]: "--" names no subtask'),
    ("max-per-subtask", lambda d: d["dataset"]["benchmark"].update(max_per_subtask=0),
     "dataset.benchmark.max_per_subtask: must be at least 1"),
    ("score-name", lambda d: d["dataset"]["benchmark"].update(name="Tiny MMLU"), "dataset.benchmark.name"),
    ("data-missing", lambda d: d["dataset"].update(input_data_location="nowhere.jsonl"), "does not exist"),
    ("data-https", lambda d: d["dataset"].update(input_data_location="https://example.com/mmlu.csv"),
     "'https://' is not a location this tool reads"),
    ("gsm8k-answer", lambda d: (gsm8k(d), d["dataset"].update(input_data_location=_bad_gsm8k(d))),
     "line 2: the answer 'They have some left.' is neither a number nor a solution ending in '#### <number>'"),
    ("name-taken", lambda d: d.update(algorithms=[{"algorithm": "CustomScorer", "preset": "f1", "name": "tiny_mmlu"}]),
     "dataset.benchmark.name: the benchmark's scores are named 'tiny_mmlu', as are those of algorithms[0]"),
    ("selection-subtask", lambda d: d.update(selection={"metric": "tiny_mmlu.accuracy.astronmy"}),
     "selection.metric: tiny_mmlu reports no score 'accuracy.astronmy' (did you mean 'accuracy.astronomy'?)"),
    # without a benchmark, the keys and algorithms it replaces are required as before
    ("no-benchmark-keys", lambda d: (d["dataset"].pop("benchmark"), d.update(algorithms=[{"algorithm": "CustomScorer",
                                                                                           "preset": "f1"}])),
     "dataset: missing required key 'model_input_key'"),
    ("no-benchmark-algorithms", lambda d: (d["dataset"].pop("benchmark"), d["dataset"].update(
        model_input_key="question", target_output_key="answer")), "missing required key 'algorithms'"),
    # evaluate_base_model
    ("base-not-finetuned", lambda d: d["models"][0].update(evaluate_base_model=True),
     "models[0].evaluate_base_model: only a fine-tuned model has a base to evaluate beside it"),
    ("base-not-boolean", lambda d: d["models"][0].update(evaluate_base_model="yes"),
     "models[0].evaluate_base_model: must be true or false"),
    ("base-name-taken", lambda d: (_tuned(d), d["models"].append({**d["models"][0], "name": "cand-base"}),
                                   d["models"][1].pop("evaluate_base_model"), d["models"][1].pop("finetuning")),
     "models[1].name: the model name 'cand-base' is already used by models[0] (its base model)"),
    ("base-name-long", lambda d: (_tuned(d), d["models"][0].update(name="c" * 52)),
     "models[0].evaluate_base_model: the base model's candidate '" + "c" * 52 + "-base'"),
]


def _bad_gsm8k(d: dict) -> str:
    path = Path(d["_tmp"]) / "bad-gsm8k.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "#### 3"}) + "\n"
                    + json.dumps({"question": "q2", "answer": "They have some left."}) + "\n")
    return str(path)


def _tuned(d: dict) -> None:
    d["models"][0].update(provider="test_benchmarks:TunedChatProvider", evaluate_base_model=True,
                          finetuning={"train_data_path": str(ROOT / "data" / "trivia_train.jsonl")})


@pytest.mark.parametrize("case_id, fn, expected", BAD, ids=[c[0] for c in BAD])
def test_a_bad_benchmark_entry_is_one_paragraph_naming_file_and_place(tmp_path, capsys, case_id, fn, expected):
    data = bench_config(tmp_path)
    data["_tmp"] = str(tmp_path)
    fn(data)
    data.pop("_tmp")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code = main(["validate", "--config", str(path)])
    out = capsys.readouterr()
    message = out.err + out.out
    assert code == 2, message
    assert str(path) in message and expected in message, message
    assert "Traceback" not in message and message.count("\n") == 1, "one paragraph"


def test_a_benchmark_expands_into_dataset_prompt_and_scorer(tmp_path):
    from lib.config import load_evaluation_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**bench_config(tmp_path, subtasks=["astronomy", "High School Geography"],
                                                   max_per_subtask=3),
                                    "algorithms": [{"algorithm": "CustomScorer", "preset": "exact_match"}]}))
    ev = load_evaluation_config(path)
    bench = ev["dataset"]["benchmark"]
    assert bench["records"] == 6 and bench["subtasks"] == ["astronomy", "high_school_geography"]
    first, second = ev["algorithms"]
    assert first["kind"] == "benchmark" and first["eval_name"] == "tiny_mmlu" and second["eval_name"] == "exact_match"
    assert first["score_names"] == ["accuracy", "accuracy.astronomy", "accuracy.high_school_geography"]
    assert ev["selection"]["metric"] == "tiny_mmlu"  # no selection given: the benchmark's accuracy
    assert ev["dataset"]["model_input_key"] is None


# --- end to end -----------------------------------------------------------------------------------------

class TunedChatProvider(OpenAIProvider):
    """A plug-in (by import path, as a user's is): an OpenAI-compatible server whose fine-tuning gives a model
    of the server's own, as hosted fine-tuning APIs do. Deploying a fine-tuned model asks for that model."""

    name = "tuned-chat"

    def finetune(self, model, context):
        return {"model_id": f"{model['model_id']}-tuned"}

    def deploy(self, model, finetuned, context):
        return {"created": [], "endpoint_url": model["endpoint_url"],
                "served_model": (finetuned or {}).get("model_id") or model["model_id"]}

    def invoker(self, model, deployment):
        return OpenAIInvoker(model["endpoint_url"], deployment["served_model"], model["invoke"], None, 30)

    def identity(self, model, deployment):
        return super().identity(model, deployment) + "|" + deployment["served_model"]


# What the base model answers to each tiny-mmlu question (in file order), and whether that is right, by hand:
# the right letters are B C D A B | C B A D C | B C D A D | B A C D A
BASE_ANSWERS = [
    ("The answer is (B).", 1), ("C. Jupiter", 1), ("About 8 minutes", 1), ("B", 0), ("I am not sure.", 0),
    ("**C**", 1), ("Answer: b", 1), ("A) 6", 1), ("The correct option is D", 1), ("KCl", 0),
    ("56", 1), ("(A)", 0), (None, 0), ("0.75", 1), ("The answer is D because 6 × 4 = 24.", 1),
    ("Canberra is the capital.", 1), ("A", 1), ("Africa, of course", 1), ("D.", 1), ("C", 0),
]
RIGHT = "BCDAB" "CBADC" "BCDAD" "BACDA"
SUBJECTS = ["astronomy", "high_school_chemistry", "elementary_mathematics", "high_school_geography"]


class Server:
    """The fake server: the base model answers as in BASE_ANSWERS (None: an HTTP 400, a failed record); the
    tuned one answers every question with the right letter except astronomy's last three."""

    def __init__(self) -> None:
        self.questions = [json.loads(x)["question"] for x in TINY_MMLU.read_text().splitlines()]
        self.asked: dict[str, set[int]] = {}  # model -> the questions it was asked
        self.lock = threading.Lock()

    def __call__(self, n: int, headers: dict, body: dict) -> tuple[int, dict]:
        prompt = body["messages"][-1]["content"]
        i = next(k for k, q in enumerate(self.questions) if f"\n{q}\n" in prompt)
        with self.lock:
            self.asked.setdefault(body["model"], set()).add(i)
        if body["model"].endswith("-tuned"):
            wrong = {2: "A", 3: "B", 4: "C"}
            return 200, reply(f"The answer is {wrong.get(i, RIGHT[i])}.")
        text, _ = BASE_ANSWERS[i]
        return (400, {"error": "bad request"}) if text is None else (200, reply(text))


def test_tiny_mmlu_end_to_end_with_the_base_model_beside_the_fine_tuned(tmp_path, capsys):
    assert [RIGHT[i] for i in range(20)] == [chr(65 + json.loads(x)["answer"])
                                             for x in TINY_MMLU.read_text().splitlines()]
    server = Server()
    with chat_server(server) as url:
        config = bench_config(tmp_path)
        config["models"] = [{"name": "cand", "provider": "test_benchmarks:TunedChatProvider", "model_id": "small",
                             "endpoint_url": url, "evaluate_base_model": True,
                             "finetuning": {"train_data_path": str(ROOT / "data" / "trivia_train.jsonl")}}]
        config["selection"] = {"metric": "tiny_mmlu.accuracy.astronomy"}  # a subtask picks the winner
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        assert main(["plan", "--config", str(tmp_path / "config.yaml")]) == 0
        plan = capsys.readouterr().out
        assert "evaluate-cand-base" in plan and "finetune-cand " in plan and "finetune-cand-base" not in plan
        code = main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3, err[-3000:]  # a model was selected; the base is partial (its failed record)
    assert server.asked == {"small": set(range(20)), "small-tuned": set(range(20))}  # both, in the one run
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())

    def expected(right: list[int]) -> dict[str, float]:
        out = {"accuracy": sum(right) / 20}
        for k, subject in enumerate(SUBJECTS):
            out[f"accuracy.{subject}"] = sum(right[5 * k:5 * k + 5]) / 5
        return out

    base = summary["models"]["cand-base"]
    assert base["scores"]["tiny_mmlu"] == expected([r for _, r in BASE_ANSWERS])
    assert base["scores"]["tiny_mmlu"] == {"accuracy": 0.7, "accuracy.astronomy": 0.6,
                                           "accuracy.high_school_chemistry": 0.8,
                                           "accuracy.elementary_mathematics": 0.6,
                                           "accuracy.high_school_geography": 0.8}
    tuned = summary["models"]["cand"]["scores"]["tiny_mmlu"]
    assert tuned == expected([1, 1, 0, 0, 0] + [1] * 15) and tuned["accuracy"] == 0.85
    assert base["errors"] == 1 and "1 of 20 answers held no letter" in " ".join(base["notes"]["tiny_mmlu"])
    # per record: the letter read, the right one, the subtask; a failed record scores 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "models" / "cand-base" / "tiny_mmlu.jsonl").read_text()
            .splitlines()]
    assert rows[0] == {"id": "r00000", "accuracy": 1.0, "accuracy.astronomy": 1.0, "answer": "B", "reference": "B",
                       "subtask": "astronomy"}
    assert rows[4]["answer"] is None and rows[12]["failed"] and rows[12]["accuracy.elementary_mathematics"] == 0.0
    # the policy named a subtask: the base wins on astronomy though the tuned one is better overall
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert selection["metric"] == "tiny_mmlu.accuracy.astronomy" and selection["best"] == "cand-base"


# The fake answers to tiny-gsm8k (right: 14 260 26 1000 -7 20 65 114 12.5 672) and whether each is right
GSM8K_ANSWERS = [
    ("She spends 12 + 2 = 14 dollars.\n#### 14", 1), ("The answer is 260 kilometres.", 1),
    ("48 / 4 = 12, and 48 - 12 - 10 = 26", 1), ("It bakes 1,000 loaves.", 1), ("It was −7 degrees.", 1),
    ("The sale price is $20.00.", 1), ("She reads 60 pages.", 0), ("\\boxed{114}", 1), ("Each pays $12.50.", 1),
    ("I don't know.", 0),
]


def test_tiny_gsm8k_end_to_end(tmp_path, capsys):
    questions = [json.loads(x)["question"] for x in TINY_GSM8K.read_text().splitlines()]

    def answer(n: int, headers: dict, body: dict) -> tuple[int, dict]:
        prompt = body["messages"][-1]["content"]
        return 200, reply(GSM8K_ANSWERS[next(i for i, q in enumerate(questions) if q in prompt)][0])

    with chat_server(answer) as url:
        config = bench_config(tmp_path)
        gsm8k(config)
        config["models"][0]["endpoint_url"] = url
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump(
            {"local": {"output_dir": str(tmp_path / "runs"), "model_cache_dir": str(tmp_path / "cache")}}))
        code = main(["run", "--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err[-3000:]
    model = json.loads((tmp_path / "run" / "summary.json").read_text())["models"]["cand"]
    assert model["scores"] == {"gsm8k": {"accuracy": sum(r for _, r in GSM8K_ANSWERS) / 10}}  # no subtasks: 0.8
    rows = [json.loads(x) for x in (tmp_path / "run" / "models" / "cand" / "gsm8k.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["14", "260", "26", "1000", "-7", "20", "60", "114", "12.5", None]


def test_the_example_benchmark_configs_validate_and_plan_the_base_candidate(capsys):
    for name in ("benchmark_config.yaml", "benchmark_gsm8k.yaml"):
        assert main(["validate", "--config", str(ROOT / "examples" / name)]) == 0
    assert main(["plan", "--config", str(ROOT / "examples" / "benchmark_config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "smollm2-finetuned-base" in out and "evaluate-smollm2-finetuned-base" in out
    assert "deploy-smollm2-finetuned-base    deploy      -" in out  # the base is not fine-tuned first


def test_a_benchmark_and_a_base_model_become_a_sagemaker_definition(tmp_path, monkeypatch):
    """The SageMaker executor needs no special case: the folder of CSVs is uploaded as the dataset, the base
    model is one more branch."""
    moto = pytest.importorskip("moto")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    data = tmp_path / "mmlu"
    data.mkdir()
    (data / "astronomy_test.csv").write_text("Closest star?,Vega,The Sun,Sirius,Rigel,B\n")
    (data / "virology_test.csv").write_text("A virus?,Yeast,Flu,Mold,Algae,B\n")
    config = {"pipeline": {"name": "bench-sm"},
              "dataset": {"dataset_name": "mmlu", "input_data_location": str(data), "benchmark": {"suite": "mmlu"}},
              "models": [{"name": "ft", "model_id": "huggingface-llm-falcon-7b-bf16", "evaluate_base_model": True,
                          "finetuning": {"train_data_path": str(ROOT / "data" / "trivia_train.jsonl")}}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "pipeline_config.yaml").write_text(yaml.safe_dump({"sagemaker": {
        "region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole", "bucket": "llm-eval-test",
        "prefix": "pipelines", "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-eval-pipelines:1"}}))
    from lib.config import load_config
    from pipelines.sagemaker_executor import build

    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="llm-eval-test")
        assembly = build(load_config(tmp_path / "config.yaml"))
        names = {s["Name"] for s in json.loads(assembly.pipeline.definition())["Steps"]}
    assert {"finetune-ft", "evaluate-ft", "evaluate-ft-base", "cleanup-ft-base"} <= names
    assert "finetune-ft-base" not in names
    uploaded = {uri for _, uri in assembly.uploads}
    root = "s3://llm-eval-test/pipelines/bench-sm/inputs/dataset"
    assert {f"{root}/astronomy_test.csv", f"{root}/virology_test.csv"} <= uploaded
