"""CloudWatch: each execution's metrics (`lib.aws.cloudwatch` lists them), its alarms and dashboard.

Idempotent per execution: what was sent is kept in the run's `sinks/cloudwatch.json`, so a datum goes
once, however often the summary changes (select, then register) and in whichever SageMaker job.
"""

from __future__ import annotations

from typing import Any

from lib import storage
from lib.aws import cloudwatch as cw
from lib.run.layout import RunLayout
from lib.run.records import INTERRUPTED, RunSummary
from lib.sinks import measures


class CloudWatchSink:
    name = "cloudwatch"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings  # tracking.cloudwatch, normalised (lib/config/tracking.py)

    def publish(self, summary: RunSummary, layout: RunLayout) -> dict[str, Any]:
        s = self.settings
        if summary.status == INTERRUPTED:  # what a stopped run measured would page someone for nothing
            return {"namespace": s["namespace"], "skipped": "the run was interrupted: nothing put"}
        state_uri = layout.sink_state(self.name)
        state = storage.read_json(state_uri) if storage.exists(state_uri) else {}
        sent = set(state.get("sent") or [])
        fresh = [d for d in cw.metric_data(summary) if cw.datum_key(d) not in sent]
        if fresh:
            cw.put_metric_data(s["namespace"], fresh, s.get("region"))
            sent |= {cw.datum_key(d) for d in fresh}
        if s["alarms"] and not state.get("alarms"):
            state["alarms"] = cw.put_alarms(s["alarms"], s["namespace"], summary.pipeline, s.get("region"))
        if s.get("dashboard") and not state.get("dashboard"):
            scores = sorted({(e, n) for r in summary.models.values() for e, n, _ in measures.scores(r)})
            body = cw.dashboard_body(summary.pipeline, s["namespace"], cw.region_of(s.get("region")),
                                     list(summary.models), scores, state.get("alarms"))
            cw.put_dashboard(s["dashboard"], body, s.get("region"))
            state["dashboard"] = s["dashboard"]
        state["sent"] = sorted(sent)
        storage.write_json(state_uri, state)
        return {"namespace": s["namespace"], "metrics": len(sent), "alarms": [a["name"] for a in s["alarms"]],
                "dashboard": state.get("dashboard")}
