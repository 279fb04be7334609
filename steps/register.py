"""Step `register`: record the selected model in a model registry (see `lib.registry`)."""

from __future__ import annotations

from typing import Any

from lib import progress, registry, sinks, storage
from lib.run.layout import RunLayout
from lib.run.records import SKIPPED, SUCCEEDED, Registration, RunSummary
from steps._common import failed, guarded


def register(registry_config: dict[str, Any], selection: dict[str, Any], approval_status: str | None,
             run_root: str, execution_id: str) -> dict[str, Any]:
    layout = RunLayout.resolve(run_root, execution_id)
    if failed(selection):
        record = Registration(status=SKIPPED, reason=f"select failed: {selection['error']}")
        storage.write_json(layout.registry, record.to_dict())
        return record.to_dict()
    summary = RunSummary.from_dict(selection["summary"])
    record = registry.registration_for(summary, registry_config, approval_status, execution_id)
    if record.status != SKIPPED:
        outcome = guarded("register", lambda: registry.register(record, layout).to_dict())
        record = Registration.from_dict({**record.to_dict(), **outcome})
        if record.status == SUCCEEDED:
            progress.say("register", f"{record.model} registered as version {record.version} of "
                                     f"{record.model_package_group_name} ({record.approval_status})")
    storage.write_json(layout.registry, record.to_dict())
    summary.registry = record
    sinks.publish(summary, layout)
    return record.to_dict()
