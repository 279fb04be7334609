"""`dataset.benchmark` of the evaluation config, checked and normalised, and the `algorithms[]` entry it
expands into (scored by `lib.scorers.benchmark`).

```yaml
dataset:
  dataset_name: tiny-mmlu
  input_data_location: data/benchmarks/tiny-mmlu.jsonl   # a file or a folder, local or s3://
  benchmark:
    suite: mmlu                     # mmlu (lettered multiple choice) or gsm8k (final number)
    subtasks: [astronomy]           # optional: only these
    max_per_subtask: 20             # optional
    columns: {question: input, choices: [A, B, C, D], answer: target, subtask: subject}   # optional
    name: mmlu                      # optional: the scores' name (default: the suite)
```

Local data is read here, at validate time (every row checked, the subtasks it holds named in the
scores); data in S3 is read by preprocess, and only the subtasks listed are known before.
"""

from __future__ import annotations

import json
from typing import Any

from lib.benchmarks.data import read_items
from lib.benchmarks.suites import SUITES, subtask_name
from lib.config.data_files import DataFileError
from lib.errors import did_you_mean

SCORER_MODULE = "lib.scorers.benchmark"


class BenchmarkConfigError(ValueError):
    """``dataset.benchmark`` is wrong; ``where`` is the YAML path below it."""

    def __init__(self, where: list[str | int], message: str) -> None:
        super().__init__(message)
        self.where = where


def normalise(raw: dict[str, Any], uri: str, num_records: int | None, remote: bool) -> dict[str, Any]:
    """The normalised entry; a local ``uri`` is read and every row checked (`DataFileError` names the
    file and line). ``num_records`` (the dataset's) limits the records, as preprocess will."""
    suite = SUITES[raw["suite"]]  # the schema allows these only
    given = dict(raw.get("columns") or {})
    for key in given:
        if key not in suite.column_keys:
            raise BenchmarkConfigError(["columns", key], f"a {suite.name} benchmark has no column '{key}'"
                                       f"{did_you_mean(key, suite.column_keys)}; its columns are "
                                       f"{', '.join(suite.column_keys)}")
    columns = {**suite.default_columns, **given}
    wanted: list[str] = []
    for i, value in enumerate(raw.get("subtasks") or []):
        name = subtask_name(value)
        if name is None:
            raise BenchmarkConfigError(["subtasks", i], f"{json.dumps(value)} names no subtask: a subtask has letters "
                                       "or digits")
        if name in wanted:
            raise BenchmarkConfigError(["subtasks", i], f"the subtask '{name}' is listed twice")
        wanted.append(name)
    benchmark = {"suite": suite.name, "name": raw.get("name") or suite.name, "columns": columns,
                 "subtasks": wanted or None, "max_per_subtask": raw.get("max_per_subtask"),
                 # known once the data is read: how many records, which subtasks they hold
                 "records": None, "subtask_names": sorted(wanted)}
    if remote:
        return benchmark
    items, seen = read_items(uri, benchmark, num_records, wanted or None)
    for i, name in enumerate(wanted):
        if name not in seen:
            holds = f"its subtasks are {', '.join(seen[:20])}" + (", ..." if len(seen) > 20 else "") if seen \
                else "its records carry no subtask"
            raise BenchmarkConfigError(["subtasks", i], f"no record of {uri} is of the subtask '{name}'"
                                       f"{did_you_mean(name, seen)}; {holds}")
    if not items:
        raise DataFileError(f"the benchmark data {uri} holds no records")
    benchmark["records"] = len(items)
    benchmark["subtask_names"] = sorted({item["subtask"] for item in items if item["subtask"]})
    return benchmark


def score_names(benchmark: dict[str, Any]) -> list[str]:
    """``accuracy`` over every record, then ``accuracy.<subtask>`` for each subtask known."""
    return ["accuracy", *[f"accuracy.{name}" for name in benchmark["subtask_names"]]]


def scorer_entry(benchmark: dict[str, Any]) -> dict[str, Any]:
    """The normalised `algorithms[]` entry a benchmark expands into (first in the list, so a config
    without `selection` picks by the benchmark's accuracy)."""
    suite = SUITES[benchmark["suite"]]
    return {"name": f"{suite.title} benchmark", "kind": "benchmark", "module": SCORER_MODULE, "config_class": None,
            "eval_name": benchmark["name"], "options": {"suite": suite.name}, "needs_model": False,
            "score_names": score_names(benchmark), "num_records": None}
