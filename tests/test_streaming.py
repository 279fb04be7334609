"""Streaming (#17 item 3): records, answers and per-record scores go from and to storage one at a time,
and what they add up to is what holding them all gave."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import storage
from lib.engine.cache import OutputCache, key_maker
from lib.engine.invoke import StoredRows, ask_records
from lib.engine.invokers import Answer, PermanentError
from lib.engine.score import Tally, mean, score_rows
from lib.reports.pages import algorithm_html

INVOKE = {"prompt_template": "Q: $model_input", "content_template": "PROMPT_PLACEHOLDER",
          "inference_parameters": {}, "output": "[0].generated_text"}
ALGORITHM = {"name": "Toy", "eval_name": "toy", "options": {}}


def records(n: int) -> list[dict]:
    return [{"id": f"r{i:05d}", "model_input": f"question {i}", "target_output": f"answer {i}"} for i in range(n)]


# ---------------------------------------------------------------- means kept as they come


@pytest.mark.parametrize("seed", range(5))
def test_a_tally_gives_the_mean_of_the_whole_list_to_the_last_bit(seed):
    rng = random.Random(seed)
    # values whose float sum depends on the order they are added in: only an exact sum agrees with fmean
    values = [rng.choice([1e16, -1e16, 1.0, 0.1, rng.random(), rng.uniform(-1e6, 1e6), None, math.nan])
              for _ in range(3000)]
    failed = rng.randrange(0, 50)
    for failed_value in (0.0, None):
        tally = Tally(failed_value)
        for v in values:
            tally.add({"a": v})
        for _ in range(failed):
            tally.fail()
        expected = mean(values + [failed_value] * failed)
        assert tally.means() == {"a": expected}
        assert tally.failed == failed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e300, 1e300), st.sampled_from([0.0, 1.0, 0.5, 1 / 3, 1e16, -1e16, math.nan,
                                                                    math.inf, -math.inf, 5e-324]),
                          st.integers(-10**6, 10**6), st.booleans(), st.none()), min_size=1, max_size=300)
       # both infinities, or sums past the largest float: `mean` refuses them too (fsum's errors)
       .filter(lambda vs: not (math.inf in vs and -math.inf in vs)),
       st.integers(1, 8), st.integers(0, 5))
def test_a_tally_folding_its_counts_still_gives_the_mean_to_the_last_bit(values, fold_at, failed):
    # few different values (counted) and many (folded into the exact sum every `fold_at`), infinities,
    # NaN, None, integers and booleans: what `mean` gives over the whole list
    tally = Tally()
    tally.FOLD_AT = fold_at
    for v in values:
        tally.add({"a": v})
        assert len(tally._seen["a"]) < fold_at  # constant memory: the counts are folded as they grow
    for _ in range(failed):
        tally.fail()
    got, want = tally.means()["a"], mean(values + [0.0] * failed)
    assert got == want


def test_a_tally_of_no_values_has_no_mean():
    tally = Tally()
    tally.add({"a": None})
    assert tally.means() == {"a": None}


# ---------------------------------------------------------------- per-record scores streamed to a file


def rows_with(answers: list[str | None]) -> list[dict]:
    return [{"id": f"r{i}", "model_input": f"q{i}", "target_output": "yes", "output": a,
             "error": None if a is not None else "HTTP 500"} for i, a in enumerate(answers)]


def varying(model_input: str, target: str, output: str) -> dict[str, float]:
    """A scorer whose second score first appears on a later record (as a custom scorer's may)."""
    if output == "boom":
        raise ValueError("cannot score this one")
    scores = {"exact": float(output == target)}
    if output.startswith("y"):
        scores["starts_y"] = 1.0
    return scores


def test_streamed_scores_equal_the_list_and_failed_records_get_every_name(tmp_path):
    # failed records before and between the names' first appearances, and one the scorer raised on
    rows = rows_with([None, "no", None, "yes", "boom", None, "yep", "no"])
    held = score_rows(ALGORITHM, rows, varying)
    out = tmp_path / "toy.jsonl"
    streamed = score_rows(ALGORITHM, iter(rows), varying, out=str(out))
    written = storage.read_jsonl(str(out))
    assert written == held["per_record"]
    assert streamed["per_record"] == []
    assert streamed["scores"] == held["scores"] == {"exact": 0.125, "starts_y": 0.333333}  # 2 of 2 + 4 failed
    assert written[0] == {"id": "r0", "failed": True, "exact": 0.0, "starts_y": 0.0}  # filled afterwards
    assert (streamed["records"], streamed["failed_records"], streamed["raised"]) == (8, 4, 1)
    assert streamed["first_error"] == "ValueError: cannot score this one"


def test_streamed_scores_are_written_whole_or_not_at_all(tmp_path):
    out = tmp_path / "toy.jsonl"
    out.write_text('{"id": "before"}\n')

    def rows():
        yield from rows_with(["yes", "no"])
        raise KeyboardInterrupt  # the run is stopped while it scores

    with pytest.raises(KeyboardInterrupt):
        score_rows(ALGORITHM, rows(), varying, out=str(out))
    assert out.read_text() == '{"id": "before"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.jsonl"]  # no temp file left


def _algorithms(write_config) -> list[dict]:
    """Three algorithms as a config gives them: two of fmeval's (one on the first 5 records) and a custom one
    that raises on one record."""
    from conftest import base_config

    from lib.config import load_config

    config = base_config()
    config["algorithms"] = [
        {"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"},
        {"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>", "num_records": 5},
        {"algorithm": "CustomScorer", "scorer": "test_custom_scorers:KeywordScorer", "config": {"word": "ye"}}]
    return load_config(write_config(config)).evaluation["algorithms"]


def test_algorithms_scored_together_equal_each_scored_alone(tmp_path, write_config):
    # the evaluate step reads the answers once for every algorithm that scores them (`score_stored`)
    from lib.scorers import scorer_for
    from steps.evaluate import score_stored

    algorithms = _algorithms(write_config)
    answers = tmp_path / "outputs.jsonl"
    storage.write_jsonl(str(answers), rows_with([None, "no", "yes", "boom", "yep", None, "Yes.", "no", "yes"]))
    scorers = [scorer_for(a) for a in algorithms]
    together = score_stored(algorithms, scorers, str(answers), [str(tmp_path / f"{i}.jsonl") for i in range(3)])
    assert sorted(together) == [0, 1, 2]
    for i, (algorithm, scorer) in enumerate(zip(algorithms, scorers, strict=True)):
        alone = scorer.score(StoredRows(str(answers), algorithm.get("num_records")), out=str(tmp_path / f"a{i}.jsonl"))
        assert together[i] == alone
        assert (tmp_path / f"{i}.jsonl").read_text() == (tmp_path / f"a{i}.jsonl").read_text()
    assert together[1]["records"] == 5 and together[0]["records"] == together[2]["records"] == 9
    assert together[2]["raised"] == 1 and together[0]["scores"]["factual_knowledge"] == round(3 / 9, 6)


def test_algorithms_scored_together_leave_no_file_changed_when_a_row_cannot_be_scored(tmp_path, write_config):
    from lib.scorers import scorer_for
    from steps.evaluate import score_stored

    algorithms = _algorithms(write_config)
    answers = tmp_path / "outputs.jsonl"
    storage.write_jsonl(str(answers), rows_with(["yes", "no"]) + [{"output": "yes", "error": None}])  # no id
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "0.jsonl").write_text('{"id": "before"}\n')
    with pytest.raises(KeyError):
        score_stored(algorithms, [scorer_for(a) for a in algorithms], str(answers),
                     [str(tmp_path / "scores" / f"{i}.jsonl") for i in range(3)])
    assert (tmp_path / "scores" / "0.jsonl").read_text() == '{"id": "before"}\n'  # as it was
    assert [p.name for p in (tmp_path / "scores").iterdir()] == ["0.jsonl"]  # no temp file, no new file


def test_algorithms_scored_together_leave_no_temp_file_when_one_cannot_be_put_in_place(tmp_path, write_config):
    from lib.scorers import scorer_for
    from lib.storage import StorageError
    from steps.evaluate import score_stored

    algorithms = _algorithms(write_config)
    answers = tmp_path / "outputs.jsonl"
    storage.write_jsonl(str(answers), rows_with(["yes", "no"]))
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "2.jsonl").mkdir()  # a folder where the third file should go
    with pytest.raises(StorageError):
        score_stored(algorithms, [scorer_for(a) for a in algorithms], str(answers),
                     [str(tmp_path / "scores" / f"{i}.jsonl") for i in range(3)])
    # each file whole or absent (the two before it were finished), none half written, no temp file left
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["0.jsonl", "1.jsonl", "2.jsonl"]
    assert [r["id"] for r in storage.read_jsonl(str(tmp_path / "scores" / "0.jsonl"))] == ["r0", "r1"]
    assert not any((tmp_path / "scores" / "2.jsonl").iterdir())


def test_algorithms_scored_together_stop_and_leave_nothing_when_the_run_is_stopped(tmp_path, write_config):
    # Ctrl-C while scoring: the run exits without waiting long for the step, which stops at its next look
    from lib.engine.score import score_together
    from lib.run import interrupt
    from lib.scorers import scorer_for

    answers = tmp_path / "outputs.jsonl"
    storage.write_jsonl(str(answers), rows_with(["yes", "no"] * 1000))
    (tmp_path / "scores").mkdir()
    read = []

    def rows():
        for row in StoredRows(str(answers)):
            read.append(row["id"])
            if len(read) == 300:
                interrupt.request()  # what the SIGINT handler does
            yield row

    scorings = [scorer_for(a).scoring(str(tmp_path / "scores" / f"{i}.jsonl"))
                for i, a in enumerate(_algorithms(write_config))]
    with pytest.raises(interrupt.Interrupted):
        score_together(rows(), scorings)
    assert len(read) < 600  # stopped within moments, not at the end of the answers
    assert list((tmp_path / "scores").iterdir()) == []  # no temp file, no half-written scores


class Interrupting:
    """A scorer class whose construction is interrupted (Ctrl-C while it loads what it needs)."""

    def __init__(self, **config) -> None:
        raise KeyboardInterrupt


def test_algorithms_scored_together_leave_no_file_when_one_is_interrupted_while_it_is_built(tmp_path, write_config):
    from lib.scorers import scorer_for
    from steps.evaluate import score_stored

    algorithms = _algorithms(write_config)
    algorithms[2]["options"]["scorer"] = "test_streaming:Interrupting"
    answers = tmp_path / "outputs.jsonl"
    storage.write_jsonl(str(answers), rows_with(["yes", "no"]))
    (tmp_path / "scores").mkdir()
    with pytest.raises(KeyboardInterrupt):
        score_stored(algorithms, [scorer_for(a) for a in algorithms], str(answers),
                     [str(tmp_path / "scores" / f"{i}.jsonl") for i in range(3)])
    assert list((tmp_path / "scores").iterdir()) == []  # the two built before it left nothing


def test_an_algorithm_page_from_streamed_files_shows_the_ten_lowest(tmp_path):
    rows = [{"id": f"r{i}", "prompt": f"Q{i}", "target_output": "t", "output": f"a{i}", "error": None}
            for i in range(40)]
    per_record = [{"id": f"r{i}", "score": (i * 7) % 40 / 40} for i in range(40)]
    storage.write_jsonl(str(tmp_path / "out.jsonl"), rows)
    storage.write_jsonl(str(tmp_path / "scores.jsonl"), per_record)
    result = {"scores": {"score": 0.5}, "per_record": [], "notes": []}
    page = algorithm_html("m", "d", ALGORITHM, result, "$model_input", StoredRows(str(tmp_path / "out.jsonl")),
                          storage.iter_jsonl(str(tmp_path / "scores.jsonl")))
    lowest = sorted(per_record, key=lambda r: r["score"])[:10]
    for r in lowest:
        assert f"Q{r['id'][1:]}<" in page  # its prompt, from the answers file
    assert sum(f"Q{i}<" in page for i in range(40)) == 10


@pytest.mark.parametrize("seed", range(8))
def test_the_ten_lowest_kept_while_scoring_are_the_ten_the_files_give(tmp_path, seed):
    # failed records (some before any score name is known, some of them followed first by a record whose
    # first score is None), ties, negative scores, records without that score: the page made from what
    # scoring kept is the page made by reading both files again
    rng = random.Random(seed)
    outputs = ["-1", "0", "0.5", "1", "none", "nan-first", "x"]
    rows = [{"id": f"r{i}", "model_input": f"q{i}", "prompt": f"Q{i}", "target_output": f"t{i}", "error": None,
             "output": rng.choice(outputs) if i > 3 else ["x", "nan-first", "x", "0"][i] if seed % 2 else None}
            for i in range(60)]
    for r in rows:
        if r["output"] == "x":
            r.update(output=None, error="HTTP 500")

    def scorer(model_input, target, output):
        if output == "none":
            return {}
        return {"score": None if output == "nan-first" else float(output), "other": 1.0}

    for counts_as_zero in (True, False):
        out = tmp_path / f"scores-{counts_as_zero}.jsonl"
        result = score_rows(ALGORITHM, rows, scorer, failed_counts_as_zero=counts_as_zero, out=str(out))
        assert result["lowest"]["score"] == "score" and len(result["lowest"]["records"]) == 10
        kept = algorithm_html("m", "d", ALGORITHM, result, "$model_input")
        read = algorithm_html("m", "d", ALGORITHM, {**result, "lowest": None}, "$model_input", rows,
                              storage.iter_jsonl(str(out)))
        assert kept == read


def test_what_scoring_kept_for_another_score_is_not_shown(tmp_path):
    # a scorer that reorders its scores after the loop: the page's score is not the one kept for, so the
    # page reads the files
    rows = [{"id": f"r{i}", "model_input": "q", "prompt": f"Q{i}", "target_output": "t", "error": None,
             "output": str(i)} for i in range(30)]
    out = tmp_path / "scores.jsonl"
    result = score_rows(ALGORITHM, rows, lambda q, t, o: {"up": float(o), "down": -float(o)}, out=str(out))
    result["scores"] = {"down": result["scores"]["down"], "up": result["scores"]["up"]}
    page = algorithm_html("m", "d", ALGORITHM, result, "$model_input", rows, storage.iter_jsonl(str(out)))
    assert all(f"Q{i}<" in page for i in range(20, 30)) and "Q0<" not in page


# ---------------------------------------------------------------- asking, in order, from a stream


class SlowAndUneven:
    """A stand-in model (not our code): answers out of order (random delays), counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> Answer:
        time.sleep(random.random() * 0.003)
        with self.lock:
            self.calls += 1
        return Answer(f"answer {prompt.split()[-1]}", 3, 2)


def ask(source, total: int, uri: str, model) -> object:
    return ask_records(source, total=total, invoke=INVOKE, invoker=model, identity="m", outputs_uri=uri,
                       cache=None, max_concurrency=8)


def test_answers_are_written_in_record_order_from_a_stream_of_records(tmp_path):
    uri = str(tmp_path / "outputs.jsonl")
    model = SlowAndUneven()
    consumed = []

    def source():  # a generator: it is never held as a list
        for r in records(600):
            consumed.append(r["id"])
            yield r

    stats = ask(source(), 600, uri, model)
    written = storage.read_jsonl(uri)
    assert [r["id"] for r in written] == [r["id"] for r in records(600)]
    assert all(r["output"] == f"answer {int(r['id'][1:])}" for r in written)
    assert model.calls == stats.invocations == 600 and stats.records == 600
    assert len(stats.latencies) == 600 and stats.summary()["latency_p95_s"] is not None


def test_a_resumed_ask_keeps_earlier_answers_drops_other_records_and_ends_in_order(tmp_path):
    uri = str(tmp_path / "outputs.jsonl")
    # an earlier run's file, written out of order: r3 failed, r5 was never answered, and "gone" is a
    # record the dataset no longer has
    earlier = [{"id": i, "model_input": "q",
                "prompt": f"Q: question {int(i[1:])}" if i != "gone" else "Q: x", "target_output": None,
                "output": "kept" if i != "r00003" else None, "error": None if i != "r00003" else "HTTP 500",
                "latency_s": 0.1, "attempts": 1, "prompt_tokens": None, "generated_tokens": None, "cached": False}
               for i in ["r00002", "gone", "r00000", "r00003", "r00001", "r00004"]]
    storage.write_jsonl(uri, earlier)
    model = SlowAndUneven()
    stats = ask(iter(records(6)), 6, uri, model)
    written = storage.read_jsonl(uri)
    assert [r["id"] for r in written] == [f"r{i:05d}" for i in range(6)]
    assert [r["output"] for r in written] == ["kept", "kept", "kept", "answer 3", "kept", "answer 5"]
    assert model.calls == stats.invocations == 2 and stats.resumed == 4


def test_an_interrupted_ask_keeps_the_answers_in_hand_and_a_rerun_asks_only_the_rest(tmp_path):
    uri = str(tmp_path / "outputs.jsonl")
    model = SlowAndUneven()

    def source():
        for r in records(300):
            if r["id"] == "r00200":
                raise KeyboardInterrupt  # Ctrl-C while the next records are read
            yield r

    with pytest.raises(KeyboardInterrupt):
        ask(source(), 300, uri, model)
    kept = storage.read_jsonl(uri)
    assert 0 < len(kept) == model.calls <= 200  # every answer in hand was written, none twice
    assert len({r["id"] for r in kept}) == len(kept)
    rerun = SlowAndUneven()
    stats = ask(iter(records(300)), 300, uri, rerun)
    assert rerun.calls == 300 - len(kept) and stats.resumed == len(kept)
    assert [r["id"] for r in storage.read_jsonl(uri)] == [r["id"] for r in records(300)]


# ---------------------------------------------------------------- S3: multipart, and nothing left on failure


def test_a_large_file_goes_to_s3_in_parts_and_reads_back_line_by_line(s3):
    uri = "s3://runs/models/m/outputs.jsonl"
    line = {"id": "x", "output": "y" * 1000}
    n = 6000  # about 6 MB: two parts of S3's 5 MiB minimum
    with storage.JsonlWriter(uri, part_bytes=5 * 1024 * 1024) as writer:
        for i in range(n):
            writer.write({**line, "id": i})
        assert writer._upload is not None and len(writer._upload["parts"]) == 1  # the first part is up already
    assert s3.list_multipart_uploads(Bucket="runs").get("Uploads", []) == []
    ids = [r["id"] for r in storage.iter_jsonl(uri)]
    assert ids == list(range(n))


def test_a_failed_s3_write_leaves_the_old_object_and_no_upload(s3):
    uri = "s3://runs/models/m/outputs.jsonl"
    storage.write_jsonl(uri, [{"id": "old"}])

    def rows():
        for i in range(6000):
            yield {"id": i, "output": "y" * 1000}
        raise RuntimeError("the scorer broke")

    with pytest.raises(RuntimeError):
        storage.write_jsonl(uri, rows())
    assert s3.list_multipart_uploads(Bucket="runs").get("Uploads", []) == []
    assert storage.read_jsonl(uri) == [{"id": "old"}]


def test_the_s3_appender_holds_only_the_lines_not_uploaded(s3):
    uri = "s3://runs/models/m/outputs.jsonl"
    storage.write_jsonl(uri, [{"id": "earlier"}])
    with storage.JsonlAppender(uri, flush_every=10, part_seconds=0) as out:
        for i in range(95):
            out.append({"id": i})
        assert len(out._rows) == 5  # 9 parts of 10 went up; only the last 5 lines are held
    assert [r["id"] for r in storage.read_jsonl(uri)] == ["earlier", *range(95)]
    assert storage.list_files(uri + ".parts") == []
    assert json.loads(storage.read_text(uri).splitlines()[1]) == {"id": 0}


# ---------------------------------------------------------------- off the happy path: a slow record, a resume, a kill


class Gauge:
    """A stand-in model (not our code) that records how many calls were in flight at once; ``hold`` names
    a prompt that is answered only once ``release_after`` other calls were made (or after 20 s)."""

    def __init__(self, hold: str | None = None, release_after: int = 0) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        self.hold, self.release_after = hold, release_after
        self.released = threading.Event()
        self.held_until_released = False

    def __call__(self, prompt: str) -> Answer:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
            if self.calls > self.release_after:
                self.released.set()
        try:
            if prompt == self.hold:
                self.held_until_released = self.released.wait(20)
            else:
                time.sleep(0.002)
            return Answer(f"answer {prompt.split()[-1]}", 3, 2)
        finally:
            with self.lock:
                self.now -= 1


def test_one_slow_record_does_not_hold_up_the_others(tmp_path):
    # the 6th record is answered only after 590 others were asked: in-order writing must not wait for it
    model = Gauge(hold="Q: question 5", release_after=590)
    stats = ask(iter(records(600)), 600, str(tmp_path / "outputs.jsonl"), model)
    assert model.held_until_released
    assert stats.invocations == 600
    assert [r["id"] for r in storage.read_jsonl(str(tmp_path / "outputs.jsonl"))] == [r["id"] for r in records(600)]


def test_answers_reach_the_cache_while_a_slow_record_holds_up_the_file(tmp_path):
    # the first record is answered only once the other 39 answers are in the cache (the test looks from
    # another thread, through the same cache): a kill meanwhile would not make a rerun pay for them again
    cache = OutputCache(str(tmp_path / "cache"))
    others = [f"Q: question {i}" for i in range(1, 40)]
    make_key = key_maker("m", INVOKE)
    model = Gauge(hold="Q: question 0", release_after=10**6)

    seen: list[bool] = []

    def look() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(cache.get(make_key(p)) for p in others):
            time.sleep(0.02)
        seen.append(all(cache.get(make_key(p)) for p in others))
        model.released.set()

    looker = threading.Thread(target=look)
    looker.start()
    stats = ask_records(iter(records(40)), total=40, invoke=INVOKE, invoker=model, identity="m",
                        outputs_uri=str(tmp_path / "outputs.jsonl"), cache=cache, max_concurrency=4)
    looker.join()
    assert seen == [True] and model.held_until_released and stats.invocations == 40
    assert cache.get(make_key("Q: question 0"))["output"] == "answer 0"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_prompt_repeated_in_one_run_is_paid_for_once(tmp_path, concurrency):
    # 100 records, 20 distinct questions: the repeats wait for the first answer (or take it from the cache)
    source = [{"id": f"r{i:03d}", "model_input": f"question {i % 20}", "target_output": None} for i in range(100)]
    model = SlowAndUneven()
    uri = str(tmp_path / "outputs.jsonl")
    stats = ask_records(iter(source), total=100, invoke=INVOKE, invoker=model, identity="m", outputs_uri=uri,
                        cache=OutputCache(str(tmp_path / "cache")), max_concurrency=concurrency)
    assert model.calls == stats.invocations == 20 and stats.cached == 80
    assert [r["output"] for r in storage.read_jsonl(uri)] == [f"answer {i % 20}" for i in range(100)]


def test_a_repeat_of_a_prompt_that_failed_asks_for_itself(tmp_path):
    class FailsFirst(SlowAndUneven):
        def __call__(self, prompt: str) -> Answer:
            with self.lock:
                first = self.calls == 0
            answer = super().__call__(prompt)
            if first:
                raise PermanentError("HTTP 400: not this time")
            return answer

    source = [{"id": f"r{i}", "model_input": "the same question", "target_output": None} for i in range(5)]
    model = FailsFirst()
    uri = str(tmp_path / "outputs.jsonl")
    stats = ask_records(iter(source), total=5, invoke=INVOKE, invoker=model, identity="m", outputs_uri=uri,
                        cache=OutputCache(str(tmp_path / "cache")), max_concurrency=1)
    rows = storage.read_jsonl(uri)
    assert rows[0]["error"] == "HTTP 400: not this time" and [r["error"] for r in rows[1:]] == [None] * 4
    assert model.calls == 2 and stats.errors == 1 and stats.cached == 3


def test_an_interrupted_ask_leaves_its_answers_in_the_cache_and_a_rerun_asks_none_of_them(tmp_path):
    uri, root = str(tmp_path / "outputs.jsonl"), str(tmp_path / "cache")

    def source():
        for r in records(300):
            if r["id"] == "r00200":
                raise KeyboardInterrupt
            yield r

    first = SlowAndUneven()
    with pytest.raises(KeyboardInterrupt):
        ask_records(source(), total=300, invoke=INVOKE, invoker=first, identity="m", outputs_uri=uri,
                    cache=OutputCache(root), max_concurrency=8)
    storage.remove(uri)  # no file to resume from: only the cache remembers
    rerun = SlowAndUneven()
    stats = ask_records(iter(records(300)), total=300, invoke=INVOKE, invoker=rerun, identity="m", outputs_uri=uri,
                        cache=OutputCache(root), max_concurrency=8)
    assert 0 < first.calls <= 200 and stats.cached == first.calls and rerun.calls == 300 - first.calls
    assert [r["output"] for r in storage.read_jsonl(uri)] == [f"answer {i}" for i in range(300)]


def test_a_resume_with_failures_scattered_through_it_asks_them_side_by_side(tmp_path):
    uri = str(tmp_path / "outputs.jsonl")
    earlier = [{"id": r["id"], "model_input": r["model_input"], "prompt": f"Q: {r['model_input']}",
                "target_output": None, "output": None if i % 3 == 0 else "kept",
                "error": "HTTP 429" if i % 3 == 0 else None, "latency_s": 0.1, "attempts": 5,
                "prompt_tokens": None, "generated_tokens": None, "cached": False}
               for i, r in enumerate(records(120))]
    storage.write_jsonl(uri, earlier)
    model = Gauge()
    stats = ask(iter(records(120)), 120, uri, model)
    assert model.calls == 40 and stats.resumed == 80
    assert model.most >= 4  # the 40 re-asks went out side by side, not one per kept answer
    written = storage.read_jsonl(uri)
    assert [r["id"] for r in written] == [r["id"] for r in records(120)]
    assert all(r["error"] is None for r in written)


def test_a_resume_stopped_half_way_leaves_its_file_in_record_order(tmp_path):
    uri = str(tmp_path / "outputs.jsonl")
    ask(iter(records(100)[::2]), 50, uri, SlowAndUneven())  # an earlier run asked every other record

    def source():
        for r in records(100):
            if r["id"] == "r00060":
                raise KeyboardInterrupt
            yield r

    with pytest.raises(KeyboardInterrupt):
        ask(source(), 100, uri, SlowAndUneven())
    ids = [r["id"] for r in storage.read_jsonl(uri)]
    assert len(ids) == len(set(ids)) and set(ids) >= {r["id"] for r in records(100)[::2]}  # nothing lost
    assert ids == sorted(ids)  # in record order, the earlier run's later rows included, for the report


def test_a_killed_ask_in_s3_is_resumed_from_its_parts_without_asking_twice(s3):
    uri = "s3://runs/models/m/outputs.jsonl"
    killed = storage.JsonlAppender(uri, flush_every=10, part_seconds=0)
    for r in records(100)[:60]:  # the job dies here: its answers are parts, the file was never written
        killed.append({**r, "prompt": f"Q: {r['model_input']}", "output": "kept", "error": None,
                       "latency_s": 0.1, "attempts": 1, "prompt_tokens": None, "generated_tokens": None,
                       "cached": False})
    assert not storage.exists(uri) and storage.list_files(uri + ".parts")
    model = SlowAndUneven()
    stats = ask(iter(records(100)), 100, uri, model)
    written = storage.read_jsonl(uri)
    assert model.calls == 40 and stats.resumed == 60
    assert [r["id"] for r in written] == [r["id"] for r in records(100)]
    assert storage.list_files(uri + ".parts") == []


def test_a_line_of_megabytes_reads_back_from_s3(s3):
    uri = "s3://runs/dataset/long.jsonl"
    storage.write_jsonl(uri, [{"id": "short"}, {"id": "long", "text": "x" * 3_000_000}, {"id": "after"}])
    rows = list(storage.iter_jsonl(uri))
    assert [r["id"] for r in rows] == ["short", "long", "after"] and len(rows[1]["text"]) == 3_000_000


class Recorder:
    """A step's reporter as `lib.progress.Reporter` is one (messages, and ``track`` for the live display):
    what the ask tells it, kept."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.tracked: list[dict] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)

    def track(self, **fields) -> None:
        self.tracked.append(fields)


def test_the_live_display_is_told_every_thousandth_record_each_failure_and_the_last(tmp_path):
    failing = {17, 18, 1999, 2998}

    def model(prompt: str) -> Answer:
        if int(prompt.split()[-1]) in failing:
            raise PermanentError("HTTP 400: not this one")
        return Answer(f"answer {prompt.split()[-1]}", 3, 2)

    told = Recorder()
    stats = ask_records(iter(records(3000)), total=3000, invoke=INVOKE, invoker=model, identity="m",
                        outputs_uri=str(tmp_path / "outputs.jsonl"), cache=None, max_concurrency=4, progress=told)
    assert stats.errors == 4
    done = [t for t in told.tracked if "done" in t]
    assert done[0] == {"total": 3000, "done": 0, "errors": 0}
    assert done[-1] == {"done": 3000, "errors": 4}  # the last record, with every failure counted
    # each failure told as it is written (record i is the (i+1)th), the rest every third record (3000 / 1000)
    assert [t["done"] for t in done if t.get("errors") and t["done"] - 1 in failing] == [18, 19, 2000, 2999]
    assert [t["errors"] for t in done if t["done"] - 1 in failing] == [1, 2, 3, 4]
    others = [t["done"] for t in done[1:] if t["done"] - 1 not in failing]
    assert others == [d for d in range(3, 3001, 3) if d - 1 not in failing]


def test_an_evaluation_reads_its_answers_once_for_every_algorithm(tmp_path, write_config):
    # the answers come through a named pipe, which can be read once: every algorithm is scored on all of them
    import os

    from conftest import base_config

    from lib.config import load_config
    from lib.engine.invoke import InvocationStats
    from lib.run.layout import RunLayout
    from steps.evaluate import scored_result

    config = base_config()
    config["algorithms"] = [{"algorithm": "FactualKnowledge", "target_output_delimiter": "<OR>"},
                            {"algorithm": "QAAccuracy", "target_output_delimiter": "<OR>"},
                            {"algorithm": "CustomScorer", "preset": "exact_match"}]
    cfg = load_config(write_config(config))
    model, algorithms = cfg.models[0], cfg.evaluation["algorithms"]
    layout = RunLayout(str(tmp_path / "run"))
    answers = layout.outputs(model["name"])
    os.makedirs(os.path.dirname(answers))
    os.mkfifo(answers)
    rows = rows_with(["yes", "no", None, "yes"])

    def feed() -> None:
        with open(answers, "w") as fifo:
            fifo.writelines(json.dumps(r) + "\n" for r in rows)

    finished = threading.Event()

    def unblock() -> None:  # a read after the first would wait for a writer for ever: it gets an empty file
        finished.wait(20)
        while not finished.wait(0.5):
            try:
                os.close(os.open(answers, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # nobody is reading
                pass

    threading.Thread(target=feed, daemon=True).start()
    threading.Thread(target=unblock, daemon=True).start()
    try:
        result = scored_result("evaluate-m", model, {}, {"dataset_name": "d"}, algorithms, layout, None,
                               InvocationStats(records=4, errors=1, first_error="HTTP 500"), None)
    finally:
        finished.set()
    assert sorted(result.scores) == ["exact_match", "factual_knowledge", "qa_accuracy"]
    for eval_name in result.scores:
        assert len(storage.read_jsonl(layout.scores(model["name"], eval_name))) == 4
    assert result.scores["factual_knowledge"]["factual_knowledge"] == 0.5


# ---------------------------------------------------------------- one row, one line

JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from([Path("/a/é"), dt.date(2026, 12, 1), b"raw"]),  # what `default=str` writes as text
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(JSON_LIKE)
def test_a_row_is_written_as_json_dumps_writes_it(value):
    # the C encoder built once: the same text as `json.dumps(row, default=str)`, non-ASCII, NaN and all
    assert storage.line_of(value) == json.dumps(value, default=str)
    assert storage.line_of({"id": "r1", "value": value}) == json.dumps({"id": "r1", "value": value}, default=str)
    row = {"z": value, "id": "r1", "a": [value, {"y": 1, "b": value}]}
    assert storage.sorted_line_of(row) == json.dumps(row, default=str, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(JSON_LIKE, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]))
def test_a_line_is_read_as_json_loads_reads_it(value, encoding):
    line = json.dumps(value, default=str).encode(encoding)
    try:
        want = json.loads(line)
    except ValueError as exc:  # refused the same way
        with pytest.raises(type(exc)):
            storage.row_of(line)
        return
    got = storage.row_of(line)
    assert json.dumps(got) == json.dumps(want)  # NaN is not equal to itself; its text is


def test_a_file_with_a_byte_order_mark_still_reads(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "r0"}\n{"id": "r1", "q": "\xc3\xa9"}\n{torn\n')
    assert list(storage.iter_jsonl(str(path))) == [{"id": "r0"}, {"id": "r1", "q": "é"}]
