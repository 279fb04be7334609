"""Step `preprocess`: read the dataset once, give every record an id, write dataset/processed.jsonl."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lib import progress, storage
from lib.run.layout import RunLayout


def preprocess(dataset: dict[str, Any], dataset_uri: str | None, run_root: str,
               execution_id: str | None = None) -> dict[str, Any]:
    layout = RunLayout.resolve(run_root, execution_id)
    uri = dataset_uri or dataset["uri"]
    if dataset.get("benchmark"):  # its suite's prompt and right answer, its item beside them for the scorer
        from lib.benchmarks.data import processed_records

        records = processed_records(uri, dataset["benchmark"], dataset.get("num_records"))
    else:
        rows = storage.read_jsonl(uri)
        if dataset.get("num_records"):
            rows = rows[: dataset["num_records"]]
        records = [
            {"id": f"r{i:05d}", "model_input": row[dataset["model_input_key"]],
             "target_output": row.get(dataset["target_output_key"])}
            for i, row in enumerate(rows)
            if dataset["model_input_key"] in row
        ]
    out = layout.dataset
    storage.write_jsonl(out, records)
    progress.say("preprocess", f"{len(records)} records from {uri}")
    # what the records are, so a gate knows whether a champion was scored on the same ones
    digest = hashlib.sha256("".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()).hexdigest()
    return {"status": "succeeded", "uri": out, "records": len(records), "dataset_hash": digest[:32],
            "dataset_name": dataset["dataset_name"], "source": uri}
