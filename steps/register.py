"""Step `register`: record the selected model in a model registry.

A run whose root is in S3 registers in the SageMaker Model Registry; a local run writes the same
record to a registry that lives beside its runs (`<output_dir>/<pipeline>/model_registry/`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lib import progress, reports, storage
from steps._common import failed, guarded


def _local_register(record: dict[str, Any], run_root: str) -> dict[str, Any]:
    index = Path(run_root).parent / "model_registry" / f"{record['model_package_group_name']}.jsonl"
    index.parent.mkdir(parents=True, exist_ok=True)
    versions = storage.read_jsonl(str(index)) if index.exists() else []
    record = {**record, "version": len(versions) + 1, "registry": str(index)}
    with open(index, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def register(registry: dict[str, Any], selection: dict[str, Any], pipeline: str, approval_status: str | None,
             run_root: str, execution_id: str) -> dict[str, Any]:
    run_root = storage.run_root(run_root, execution_id)
    if failed(selection) or not selection.get("best"):
        record = {"status": "skipped", "error": None,
                  "reason": "no model was selected" if not failed(selection) else selection["error"]}
    else:
        best = selection["best"]
        candidate = selection["candidates"][best]
        registry = {**registry, **(candidate.get("register") or {})}  # a model's own register_config wins
        record = {
            "model_package_group_name": registry["model_package_group_name"],
            "model_package_group_description": registry.get("model_package_group_description", ""),
            "model": best, "model_id": candidate["model_id"], "provider": candidate["provider"],
            "metrics": candidate["scores"], "selection_metric": selection["metric"],
            "selection_value": selection["best_value"],
            "approval_status": approval_status or registry.get("approval_status", "PendingManualApproval"),
            "pipeline": pipeline, "execution_id": execution_id, "deployment": candidate.get("deployment") or {},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if run_root.startswith("s3://"):
            from lib.registry_sagemaker import register_model_package

            record = guarded("register", lambda: register_model_package(record, run_root))
        else:
            record = {"status": "succeeded", "error": None, **_local_register(record, run_root)}
        if record.get("status") == "succeeded":
            progress.say("register", f"{best} registered as version {record.get('version')} of "
                                     f"{record['model_package_group_name']} ({record['approval_status']})")
    storage.write_json(storage.join(run_root, "registry.json"), record)
    summary_uri = storage.join(run_root, "summary.json")
    if storage.exists(summary_uri):
        summary = storage.read_json(summary_uri)
        summary["registry"] = record
        storage.write_json(summary_uri, summary)
        storage.write_text(storage.join(run_root, "report.html"), reports.run_report_html(summary, run_root),
                           "text/html; charset=utf-8")
    return record
