"""Where answers and outputs are kept: the answer cache (one file per model setup locally, part objects
in S3), outputs.jsonl appended to S3 in parts, and what a process builds once and reuses (the S3 client,
fmeval's scorers, fmeval's report cell without its plotting stack). S3 is moto's."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lib import storage
from lib.engine import cache as cache_module
from lib.engine.cache import OutputCache, cache_key, setup_key

ROOT = Path(__file__).resolve().parent.parent
INVOKE = {"prompt_template": "$model_input", "content_template": "PROMPT_PLACEHOLDER",
          "inference_parameters": {"max_new_tokens": 8}, "output": "[0].generated_text"}


def answer(i: int) -> dict:
    return {"output": f"answer {i}", "latency_s": 0.01, "prompt_tokens": 3, "generated_tokens": 2}


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- local store


def _documented_key(identity: str, invoke: dict, prompt: str) -> str:
    """The key as the module docstring defines it (and earlier releases wrote it): the hash of the setup,
    then the hash of the setup with the prompt, each sha256 over JSON with sorted keys."""
    material = {"identity": identity, "content_template": invoke.get("content_template"),
                "inference_parameters": invoke.get("inference_parameters") or {},
                "custom_attributes": invoke.get("custom_attributes"), "system_prompt": invoke.get("system_prompt"),
                "output": invoke.get("output")}

    def digest(value: dict) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

    return f"{digest(material)[:20]}.{digest({**material, 'prompt': prompt})}"


@pytest.mark.parametrize("identity", ["openai|http://h/v1|m", "\x00prompt\x00", "ü"])
def test_keys_made_once_per_setup_are_the_keys_earlier_releases_wrote(identity):
    invoke = {**INVOKE, "system_prompt": "", "inference_parameters": {"temperature": 0.1, "stop": ["é", '"']}}
    make = cache_module.key_maker(identity, invoke)
    for prompt in ["", "q", 'he said "hi"\n\tπ😀 \x00', "\x00prompt\x00", "x" * 5000]:
        assert make(prompt) == cache_key(identity, invoke, prompt) == _documented_key(identity, invoke, prompt)



def test_one_file_per_setup_shared_by_threads_and_read_back_by_another_instance(tmp_path):
    cache = OutputCache(str(tmp_path))
    keys = [cache_key("model-a", INVOKE, f"question {i}") for i in range(1000)]

    def put(part: int) -> None:
        for i in range(part, 1000, 8):
            cache.put(keys[i], answer(i))

    threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(cache.get(keys[i]) == answer(i) for i in range(1000))  # pending or written, all found
    cache.close()

    written = files_under(tmp_path)
    assert written == [tmp_path / "answers" / f"{setup_key('model-a', INVOKE)}.jsonl"]
    lines = written[0].read_text().splitlines()
    assert len(lines) == 1000 and all(json.loads(line)["key"] in keys for line in lines)

    again = OutputCache(str(tmp_path))
    assert [again.get(k) for k in keys] == [answer(i) for i in range(1000)]
    other = cache_key("model-a", dict(INVOKE, inference_parameters={"max_new_tokens": 9}), "question 1")
    assert again.get(other) is None


def test_two_setups_two_files(tmp_path):
    with OutputCache(str(tmp_path)) as cache:
        cache.put(cache_key("model-a", INVOKE, "q"), answer(1))
        cache.put(cache_key("model-b", INVOKE, "q"), answer(2))
    assert len(files_under(tmp_path / "answers")) == 2
    again = OutputCache(str(tmp_path))
    assert again.get(cache_key("model-a", INVOKE, "q")) == answer(1)
    assert again.get(cache_key("model-b", INVOKE, "q")) == answer(2)


def test_answers_still_pending_are_written_when_the_cache_is_dropped(tmp_path):
    cache = OutputCache(str(tmp_path))
    cache.put(cache_key("m", INVOKE, "q"), answer(1))  # fewer than a batch
    del cache  # as when a step's cache goes out of scope
    assert OutputCache(str(tmp_path)).get(cache_key("m", INVOKE, "q")) == answer(1)


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from lib.engine.cache import OutputCache, cache_key
cache = OutputCache(sys.argv[2])
for i in range(int(sys.argv[3]), int(sys.argv[3]) + 500):
    cache.put(cache_key("m", {"output": "x"}, f"q{i}"), {"output": f"a{i}", "n": "x" * (i % 300)})
"""


def test_processes_appending_at_once_leave_whole_lines(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), str(start)])
             for start in (0, 500, 1000, 1500)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    (path,) = files_under(tmp_path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2001
    assert all(json.loads(line)["value"]["output"].startswith("a") for line in lines[:-1])
    cache = OutputCache(str(tmp_path))
    assert all(cache.get(cache_key("m", {"output": "x"}, f"q{i}"))["output"] == f"a{i}" for i in range(2000))


def test_a_damaged_line_is_a_miss_and_the_next_answer_starts_a_line_of_its_own(tmp_path):
    keys = [cache_key("m", INVOKE, f"q{i}") for i in range(3)]
    with OutputCache(str(tmp_path)) as cache:
        cache.put(keys[0], answer(0))
        cache.put(keys[1], answer(1))
    (path,) = files_under(tmp_path)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[:20] + b"\x00garbage\n" + b'{"key": "' + keys[2].encode())  # torn at the end
    cache = OutputCache(str(tmp_path))
    assert cache.get(keys[0]) == answer(0)
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    cache.put(keys[2], answer(2))
    cache.close()
    again = OutputCache(str(tmp_path))
    assert again.get(keys[2]) == answer(2) and again.get(keys[0]) == answer(0)


def test_answers_from_the_one_file_per_record_layout_are_found_and_moved(tmp_path):
    key = cache_key("m", INVOKE, "q")
    old = key.split(".")[1]  # the whole-request hash was the key before
    legacy = tmp_path / "outputs" / old[:2] / f"{old}.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps(answer(7)))
    with OutputCache(str(tmp_path)) as cache:
        assert cache.get(key) == answer(7)
    legacy.unlink()
    assert OutputCache(str(tmp_path)).get(key) == answer(7)


# ---------------------------------------------------------------- S3


def keys_under(client, prefix: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket="runs", Prefix=prefix).get("Contents", [])]


def test_s3_cache_uploads_parts_never_one_object_per_answer(s3, monkeypatch):
    monkeypatch.setattr(cache_module, "S3_PART_SECONDS", 3600.0)
    keys = [cache_key("m", INVOKE, f"q{i}") for i in range(2500)]
    cache = OutputCache("s3://runs/cache")
    assert cache.get(keys[0]) is None  # nothing there yet: a miss
    for i, key in enumerate(keys):
        cache.put(key, answer(i))
    assert len(keys_under(s3, "cache/")) == 2  # a part per 1,000 answers; 500 still pending
    cache.close()
    assert len(keys_under(s3, "cache/")) == 3
    again = OutputCache("s3://runs/cache")
    assert [again.get(k) for k in keys] == [answer(i) for i in range(2500)]


def test_s3_cache_damaged_part_is_a_miss_and_many_parts_are_folded(s3, monkeypatch):
    monkeypatch.setattr(cache_module, "S3_PART_ANSWERS", 1)
    keys = [cache_key("m", INVOKE, f"q{i}") for i in range(70)]
    cache = OutputCache("s3://runs/cache")
    for i, key in enumerate(keys):
        cache.put(key, answer(i))
    parts = keys_under(s3, "cache/")
    assert len(parts) == 70
    s3.put_object(Bucket="runs", Key=parts[3], Body=b"\x00 not json")
    reader = OutputCache("s3://runs/cache")
    assert reader.get(keys[3]) is None
    assert all(reader.get(keys[i]) == answer(i) for i in range(70) if i != 3)
    assert len(keys_under(s3, "cache/")) == 1  # more than 64 parts: folded into one
    assert OutputCache("s3://runs/cache").get(keys[69]) == answer(69)


def test_s3_outputs_go_up_in_parts_each_line_once_and_the_file_is_whole_at_close(s3):
    uri = "s3://runs/run/models/m/outputs.jsonl"
    out = storage.JsonlAppender(uri, flush_every=50, part_seconds=0)
    for i in range(1000):
        out.append({"id": f"r{i}"})
    parts = keys_under(s3, "run/models/m/outputs.jsonl.parts/")
    assert len(parts) == 20
    uploaded = [json.loads(line)["id"] for p in parts
                for line in s3.get_object(Bucket="runs", Key=p)["Body"].read().splitlines()]
    assert uploaded == [f"r{i}" for i in range(1000)]  # each line in one part, none twice
    out.close()
    assert [r["id"] for r in storage.read_jsonl(uri)] == [f"r{i}" for i in range(1000)]
    assert keys_under(s3, "run/models/m/outputs.jsonl.parts/") == []


def test_s3_outputs_of_a_killed_run_are_folded_in_by_the_next_appender(s3):
    uri = "s3://runs/run/outputs.jsonl"
    with storage.JsonlAppender(uri) as first:
        first.append({"id": "r0"})
    killed = storage.JsonlAppender(uri, flush_every=2, part_seconds=0)
    for i in (1, 2, 3):
        killed.append({"id": f"r{i}"})  # r3 is not in a part yet when the run dies
    del killed
    with storage.JsonlAppender(uri) as resumed:
        assert [r["id"] for r in storage.read_jsonl(uri)] == ["r0", "r1", "r2"]
        resumed.append({"id": "r3"})
    assert [r["id"] for r in storage.read_jsonl(uri)] == ["r0", "r1", "r2", "r3"]
    assert keys_under(s3, "run/outputs.jsonl.parts/") == []


def test_one_s3_client_per_process(s3, monkeypatch):
    from lib import aws

    first, _, _ = storage._s3("s3://runs/a")
    assert storage._s3("s3://runs/b")[0] is first and aws.client("s3") is first
    storage.write_text("s3://runs/a", "x")
    assert storage.read_text("s3://runs/a") == "x"
    assert aws.client("s3", "eu-west-1") is not first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")  # boto3 reads it: a new client
    assert aws.client("s3").meta.endpoint_url == "http://localhost:4566"


def test_a_new_moto_session_gets_a_new_client(monkeypatch):
    moto = pytest.importorskip("moto")
    from lib import aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        aws.client("s3").create_bucket(Bucket="first")
        before = aws.client("s3")
    with moto.mock_aws():  # a fresh account: the bucket above is gone, and the client must know it
        assert aws.client("s3") is not before
        assert aws.client("s3").list_buckets()["Buckets"] == []


def test_clients_made_from_many_threads_at_once_are_one(s3):
    from lib import aws

    aws._CLIENTS.clear()
    made: list = []
    threads = [threading.Thread(target=lambda: made.append(aws.client("sagemaker"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in made}) == 1


# ---------------------------------------------------------------- built once per process


def test_a_scorer_is_built_once_and_shared_by_models():
    from lib.scorers import fmeval_algorithms as algorithms
    from lib.scorers.fmeval_scorer import record_scorer

    spec = algorithms.BUILTIN["FactualKnowledge"]
    algorithm = {"name": "FactualKnowledge", "module": spec.module, "config_class": spec.config_class,
                 "eval_name": spec.eval_name, "options": {"target_output_delimiter": "<OR>"}}
    first, _ = record_scorer(algorithm)
    again, _ = record_scorer(dict(algorithm))  # another model's copy of the same entry
    assert again is first
    assert first("q", "Paris<OR>paris", "It is Paris.")["factual_knowledge"] == 1.0
    other, _ = record_scorer(dict(algorithm, options={"target_output_delimiter": "|"}))
    assert other is not first and other("q", "Rome|Paris", "Paris")["factual_knowledge"] == 1.0


CELL = """
import json, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "with-plotting":
    import IPython, matplotlib.pyplot  # loaded first: fmeval's cells import them as they are
from lib.reports.pages import _fmeval_cell
cells = [_fmeval_cell({"eval_name": e}, "trivia <b>", scores, "Q: $model_input")
         for e, scores in [("factual_knowledge", {"factual_knowledge": 0.5, "factual_knowledge_quasi_exact": 0.6}),
                           ("qa_accuracy", {"f1_score": 0.25, "exact_match_score": 0.0}),
                           ("classification_accuracy", {"classification_accuracy_score": 1.0})]]
import fmeval.reporting.cells as c
print(json.dumps({"cells": cells, "loaded": [m for m in ("matplotlib", "matplotlib.pyplot", "IPython")
                                            if m in sys.modules], "plt": c.plt.__name__}))
"""


def test_fmeval_report_cells_without_the_plotting_stack_are_fmevals_own():
    def render(mode: str) -> dict:
        done = subprocess.run([sys.executable, "-c", CELL, str(ROOT), mode], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.splitlines()[-1])

    light, full = render("without"), render("with-plotting")
    assert light["loaded"] == [], "matplotlib and IPython stay unloaded"
    assert full["loaded"] == ["matplotlib", "matplotlib.pyplot", "IPython"]
    assert light["cells"] == full["cells"]
    assert "Average Score: 0.25" in light["cells"][1] and "Custom Dataset" in light["cells"][0]
    assert "trivia &lt;b&gt;" in light["cells"][0]
    assert light["plt"] == full["plt"] == "matplotlib.pyplot"  # and a chart would still find pyplot
