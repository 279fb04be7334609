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
from typing import Any

from lib import storage
from lib.benchmarks.suites import SUITES
from lib.engine.score import empty_result, mean


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

    def score(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        items = self._items()
        missing = 0
        per_record: list[dict[str, Any]] = []
        unread = 0
        for row in rows:
            item = items.get(row["id"])
            if item is None:  # scored without the run's dataset: the right answer is the target
                missing += 1
                item = {"answer": str(row.get("target_output") or ""), "subtask": None}
            subtask = item.get("subtask")
            keys = ["accuracy"] + ([f"accuracy.{subtask}"] if subtask else [])
            if row.get("error") is not None or row.get("output") is None:
                per_record.append({"id": row["id"], "failed": True, **dict.fromkeys(keys, 0.0),
                                   "reference": item["answer"], "subtask": subtask})
                continue
            answer = self.suite.extract(row["output"], item)
            unread += answer is None
            value = 1.0 if self.suite.correct(answer, item) else 0.0
            per_record.append({"id": row["id"], **dict.fromkeys(keys, value), "answer": answer,
                               "reference": item["answer"], "subtask": subtask})
        result = empty_result(self.algorithm)
        result["per_record"] = per_record
        result["failed_records"] = sum(1 for r in per_record if r.get("failed"))
        result["scores"] = _means(per_record)
        notes = result["notes"]
        if unread:
            notes.append(f"{unread} of {len(rows)} answers held no {self.suite.answer_kind} that could be read "
                         "(scored 0)")
        counts = Counter(r["subtask"] for r in per_record if r.get("subtask"))
        if counts:
            notes.append("records per subtask: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if missing:
            notes.append(f"{missing} records had no benchmark item in the run's dataset: scored against their "
                         "target without subtask")
        return result


def _means(per_record: list[dict[str, Any]]) -> dict[str, float | None]:
    """``accuracy`` first, then each subtask's in name order; each the mean over the records that have it."""
    names = sorted({k for r in per_record for k in r if k.startswith("accuracy.")})
    scores: dict[str, float | None] = {}
    for name in ["accuracy", *names]:
        scores[name] = mean([r.get(name) for r in per_record])
    return scores
