"""Model registries: the selected model of a run becomes a registered version.

A run whose root is in S3 registers in the SageMaker Model Registry (`sagemaker.py`); a local run
in a registry file beside its runs (`local.py`). Both take the same `Registration` record.

Register is three calls so that the registry changes last: `prepare` (what will be registered,
nothing written), `register` (the registry changes), and `withdraw` when the run could not record
that it registered (a local registry drops the line again).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from lib.run.layout import RunLayout
from lib.run.records import PENDING, SKIPPED, Registration, RunSummary


def registration_for(summary: RunSummary, registry: dict[str, Any], approval_status: str | None,
                     execution_id: str | None = None,
                     per_record: Callable[[str, str], dict[str, Any]] | None = None) -> Registration:
    """What would be registered for ``summary`` by execution ``execution_id``: its best model, or a skip
    with the reason. ``per_record`` reads the winner's per-record scores, kept with the version so a
    later gate can compare a new winner with it on the same records."""
    best = summary.selection.best
    if not best:
        return Registration(status=SKIPPED, reason="no model was selected")
    candidate = summary.models[best]
    registry = {**registry, **(candidate.register or {})}  # a model's own register_config wins
    record = Registration(
        status=PENDING,
        model_package_group_name=registry["model_package_group_name"],
        model_package_group_description=registry.get("model_package_group_description", ""),
        model=best, model_id=candidate.model_id, provider=candidate.provider, metrics=candidate.scores,
        selection_metric=summary.selection.metric, selection_value=summary.selection.best_value,
        approval_status=approval_status or registry.get("approval_status", "PendingManualApproval"),
        pipeline=summary.pipeline, execution_id=execution_id or summary.execution_id,
        deployment=candidate.deployment or {},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        dataset_hash=summary.dataset_hash,
        # lineage: the execution (above), its data, its config and its MLflow run (the report: register adds it)
        dataset_uri=summary.dataset_uri, config_hash=summary.config_hash,
        mlflow_run_id=(summary.tracking.get("mlflow") or {}).get("run_id"),
        per_record=per_record(best, summary.selection.metric) if per_record else {},
        recipe=candidate.recipe,
    )
    # what makes a version new: another model, other data or other scores (not the decision about it)
    identity = {k: getattr(record, k) for k in ("model", "model_id", "provider", "deployment", "metrics",
                                                "dataset_hash", "model_package_group_name")}
    record.fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return record


def prepare(registration: Registration, layout: RunLayout) -> Registration:
    """Fill in what is known before registering (a local registry's file); nothing is written."""
    if not layout.is_remote:
        from lib.registry.local import prepare_locally

        return prepare_locally(registration, layout.local_registry_index(registration.model_package_group_name))
    return registration


def register(registration: Registration, layout: RunLayout) -> Registration:
    """Write ``registration`` to the registry the run's storage implies."""
    if layout.is_remote:
        from lib.registry.sagemaker import register_model_package

        return register_model_package(registration, layout)
    from lib.registry.local import register_locally

    return register_locally(registration, layout.local_registry_index(registration.model_package_group_name))


def withdraw(registration: Registration, layout: RunLayout) -> bool:
    """Undo ``register`` for a run that could not record it; True if undone.

    A local registry drops its line. A SageMaker model package is left as it is (it carries the
    execution id in its metadata; deleting a package is for a person to decide).
    """
    if layout.is_remote:
        return False
    from lib.registry.local import withdraw_locally

    return withdraw_locally(registration, layout.local_registry_index(registration.model_package_group_name))
