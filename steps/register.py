"""Step `register`: record the selected model in a model registry (see `lib.registry`).

The registry changes last. First the run's own files say what is about to be registered
(`registry.json` and the summary with status ``pending``): if they cannot be written, nothing is
registered. Then the registry changes. Then the files say how it went; if that last write fails
after a local registry took the line, the line is withdrawn and the files say ``failed``, or, if
even that cannot be written, a file that would claim success is removed. A run never says it
registered a version the registry does not hold, nor the other way round.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lib import progress, registry, sinks, storage
from lib.registry.champion import same_version
from lib.run.layout import RunLayout
from lib.run.records import FAILED, SKIPPED, SUCCEEDED, Registration, RunSummary
from lib.run.scores import per_record_reader
from lib.storage import StorageError
from steps._common import failed, guarded


def register(registry_config: dict[str, Any], gated: dict[str, Any], approval_status: str | None,
             run_root: str, execution_id: str, tracking: dict[str, Any] | None = None) -> dict[str, Any]:
    """``tracking``: the sinks' settings (`lib.sinks.context.tracking_args`), for the summary's publishes."""
    layout = RunLayout.resolve(run_root, execution_id)
    if failed(gated) or not gated.get("summary"):
        why = gated.get("error") or "; ".join((gated.get("gate") or {}).get("reasons") or ["select failed"])
        record = Registration(status=SKIPPED, reason=why)
        storage.write_json(layout.registry, record.to_dict())
        return record.to_dict()
    summary = RunSummary.from_dict(gated["summary"])
    decided = summary.gate if summary.gate and summary.gate.decision else None
    record = registry.registration_for(summary, registry_config,
                                       decided.approval_status if decided else approval_status, execution_id,
                                       per_record_reader(layout, {}))
    if decided:
        record.gate_reason = f"gate {decided.decision}: " + "; ".join(decided.reasons)
    record.report_uri = layout.report  # lineage: the evidence behind the version
    if record.status != SKIPPED:
        same = same_version(record.model_package_group_name, layout, record.fingerprint)
        if same:
            record = Registration(status=SKIPPED, model=record.model, gate_reason=record.gate_reason,
                                  model_package_group_name=record.model_package_group_name,
                                  reason=f"identical to version {same.get('version')} (same model, data and "
                                         "scores): nothing new to register")
            progress.say("register", record.reason)
    if record.status == SKIPPED:
        _record(summary, record, layout, tracking)
        return record.to_dict()

    pending = registry.prepare(record, layout)
    _record(summary, pending, layout, tracking)  # StorageError here: nothing was registered
    outcome = guarded("register", lambda: registry.register(replace(pending), layout).to_dict())
    done = Registration.from_dict({**pending.to_dict(), **outcome})
    if done.status != SUCCEEDED:
        done.version = None  # nothing was registered
    try:
        _record(summary, done, layout, tracking)
    except StorageError as exc:
        if done.status == SUCCEEDED:
            _take_back(summary, done, layout, exc, tracking)
        raise
    if done.status == SUCCEEDED:
        progress.say("register", f"{done.model} registered as version {done.version} of "
                                 f"{done.model_package_group_name} ({done.approval_status})")
    return done.to_dict()


def _record(summary: RunSummary, record: Registration, layout: RunLayout,
            tracking: dict[str, Any] | None = None) -> None:
    """`registry.json`, then the summary (small files first: on a filling disk they are the ones
    that still fit)."""
    storage.write_json(layout.registry, record.to_dict())
    summary.registry = record
    sinks.publish(summary, layout, tracking=tracking)


def _take_back(summary: RunSummary, done: Registration, layout: RunLayout, exc: StorageError,
               tracking: dict[str, Any] | None = None) -> None:
    """The registry holds ``done`` but the run could not say so: undo it, and say that instead."""
    if not registry.withdraw(done, layout):
        progress.say("register", f"registered {done.model} as version {done.version}, but could not "
                                 f"record it in the run's files ({exc})")
        return
    undone = replace(done, status=FAILED, version=None,
                     error=f"registered, then withdrawn because the run could not record it: {exc}")
    progress.say("register", f"FAILED: {undone.error}")
    try:
        _record(summary, undone, layout, tracking)
    except StorageError:
        pass
    # a file that still claims the withdrawn version goes (a removal needs no free space)
    for uri, key in ((layout.registry, None), (layout.summary, "registry")):
        if _claims(uri, key, done):
            storage.remove(uri)


def _claims(uri: str, key: str | None, done: Registration) -> bool:
    try:
        data = storage.read_json(uri)
    except (OSError, ValueError, StorageError):
        return False
    if key is not None:
        data = data.get(key) if isinstance(data, dict) else None
    return isinstance(data, dict) and data.get("status") == SUCCEEDED and data.get("version") == done.version
