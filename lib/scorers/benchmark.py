"""A benchmark's scorer (kind ``benchmark``): reads the letter or final number out of each stored answer
and compares it with the record's right answer. It is never written in `algorithms[]`: a
`dataset.benchmark` entry expands into it (`lib.benchmarks.config.scorer_entry`).

Scores, each the mean over records (a record the model failed on, or whose answer holds no letter or
number, scores 0): ``accuracy`` over all records and ``accuracy.<subtask>`` over each subtask's. A
policy names them as ``mmlu.accuracy`` or ``mmlu.accuracy.astronomy``. Per record (in
``models/<model>/<name>.jsonl``): ``accuracy``, ``accuracy.<its subtask>``, the ``answer`` read, the
``reference`` and the ``subtask``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

from lib import storage
from lib.benchmarks.suites import SUITES
from lib.engine.score import Tally, empty_result


class BenchmarkScorer:
    kind = "benchmark"
    needs_model = False
    lower_is_better = False
    takes_context = True  # reads the items preprocess stored beside the records (the run's dataset)
    config_keys: tuple[str, ...] = ()
    model_keys: tuple[str, ...] = ()

    def __init__(self, algorithm: dict[str, Any], context: dict[str, Any]) -> None:
        self.algorithm = algorithm
        self.context = context
        self.suite = SUITES[algorithm["options"]["suite"]]

    @classmethod
    def check_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        from lib.scorers import ScorerConfigError

        raise ScorerConfigError([], "a benchmark is configured under dataset.benchmark, not in algorithms")

    def _items(self) -> dict[str, dict[str, Any]]:
        layout = self.context.get("layout")
        if layout is None or not storage.exists(layout.dataset):
            return {}
        return {r["id"]: r["benchmark"] for r in storage.read_jsonl(layout.dataset) if r.get("benchmark")}

    def score(self, rows: Iterable[dict[str, Any]], out: str | None = None) -> dict[str, Any]:
        items = self._items()
        missing = unread = records = 0
        per_record: list[dict[str, Any]] = []
        tally = Tally(failed_value=None)  # a failed record's 0s are its own keys', added with them
        counts: Counter[str] = Counter()
        with storage.JsonlWriter(out) if out else nullcontext() as writer:
            for row in rows:
                records += 1
                item = items.get(row["id"])
                if item is None:  # scored without the run's dataset: the right answer is the target
                    missing += 1
                    item = {"answer": str(row.get("target_output") or ""), "subtask": None}
                subtask = item.get("subtask")
                counts.update([subtask] if subtask else [])
                keys = ["accuracy"] + ([f"accuracy.{subtask}"] if subtask else [])
                if row.get("error") is not None or row.get("output") is None:
                    entry = {"id": row["id"], "failed": True, **dict.fromkeys(keys, 0.0), "reference": item["answer"],
                             "subtask": subtask}
                    tally.fail()
                else:
                    answer = self.suite.extract(row["output"], item)
                    unread += answer is None
                    value = 1.0 if self.suite.correct(answer, item) else 0.0
                    entry = {"id": row["id"], **dict.fromkeys(keys, value), "answer": answer,
                             "reference": item["answer"], "subtask": subtask}
                tally.add(dict.fromkeys(keys, entry["accuracy"]))
                if writer is not None:
                    writer.write(entry)
                else:
                    per_record.append(entry)
        result = empty_result(self.algorithm)
        result["per_record"] = per_record
        result["failed_records"] = tally.failed
        means = tally.means()  # accuracy first, then each subtask's in name order
        result["scores"] = {n: means.get(n) for n in ["accuracy", *sorted(n for n in means if n != "accuracy")]}
        notes = result["notes"]
        if unread:
            notes.append(f"{unread} of {records} answers held no {self.suite.answer_kind} that could be read "
                         "(scored 0)")
        if counts:
            notes.append("records per subtask: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if missing:
            notes.append(f"{missing} records had no benchmark item in the run's dataset: scored against their "
                         "target without subtask")
        return result
