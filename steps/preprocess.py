"""Step `preprocess`: read the dataset once, give every record an id, write dataset/processed.jsonl."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from typing import Any

from lib import progress, storage
from lib.run.layout import RunLayout


def preprocess(dataset: dict[str, Any], dataset_uri: str | None, run_root: str,
               execution_id: str | None = None) -> dict[str, Any]:
    layout = RunLayout.resolve(run_root, execution_id)
    uri = dataset_uri or dataset["uri"]
    if dataset.get("benchmark"):  # its suite's prompt and right answer, its item beside them for the scorer
        from lib.benchmarks.data import processed_records

        records: Iterable[dict[str, Any]] = processed_records(uri, dataset["benchmark"], dataset.get("num_records"))
    else:  # one record at a time: a dataset of any size in constant memory
        rows = itertools.islice(storage.iter_jsonl(uri), dataset.get("num_records") or None)
        records = ({"id": f"r{i:05d}", "model_input": row[dataset["model_input_key"]],
                    "target_output": row.get(dataset["target_output_key"])}
                   for i, row in enumerate(rows) if dataset["model_input_key"] in row)
    out = layout.dataset
    # what the records are, so a gate knows whether a champion was scored on the same ones
    digest = hashlib.sha256()
    with storage.JsonlWriter(out) as writer:
        for record in records:
            writer.write(record)
            digest.update((storage.sorted_line_of(record) + "\n").encode())
    progress.say("preprocess", f"{writer.rows} records from {uri}")
    return {"status": "succeeded", "uri": out, "records": writer.rows, "dataset_hash": digest.hexdigest()[:32],
            "dataset_name": dataset["dataset_name"], "source": uri}
