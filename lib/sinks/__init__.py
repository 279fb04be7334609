"""Where a run's records go once they change: the run's own files, and, when `tracking:` names them, an
MLflow tracking server (`mlflow_runs.py`) and CloudWatch (`cloudwatch.py`).

A sink receives the same typed `RunSummary` every time the summary changes (after select, after
register) and the run's `RunLayout`, so it must be idempotent per execution. It may return what it
recorded (an MLflow run id); that, or why it failed, goes into ``summary.tracking[<sink>]``. A sink
that fails says so and does not stop the others nor the run; the run's own files (``required``) go
first, so the others can read the report, and the summary is written again with their outcomes.
"""

from __future__ import annotations

from typing import Any, Protocol

from lib import progress
from lib.redact import redact
from lib.run.layout import RunLayout
from lib.run.records import FAILED, SUCCEEDED, RunSummary


class Sink(Protocol):
    name: str

    def publish(self, summary: RunSummary, layout: RunLayout) -> dict[str, Any] | None:
        """Record ``summary``; called again with the newer summary whenever it changes. Returns what
        it recorded (ids, names), kept in ``summary.tracking``."""


def default_sinks(tracking: dict[str, Any] | None = None) -> list[Sink]:
    """The run's files, then each sink `tracking` (the step's `tracking` argument) turns on. A sink's
    library is imported only when it is on (mlflow takes seconds to import)."""
    from lib.sinks.run_files import RunFilesSink

    sinks: list[Sink] = [RunFilesSink()]
    settings = tracking or {}
    if settings.get("mlflow"):
        from lib.sinks.mlflow_runs import MlflowSink

        sinks.append(MlflowSink(settings))
    if settings.get("cloudwatch"):
        from lib.sinks.cloudwatch import CloudWatchSink

        sinks.append(CloudWatchSink(settings["cloudwatch"]))
    return sinks


def publish(summary: RunSummary, layout: RunLayout, sinks: list[Sink] | None = None,
            tracking: dict[str, Any] | None = None) -> list[str]:
    """Hand ``summary`` to every sink; the names of those that failed (the run's files raise instead:
    a summary that cannot be written is not a run that succeeded)."""
    chosen = default_sinks(tracking) if sinks is None else sinks
    required = [s for s in chosen if getattr(s, "required", False)]
    others = [s for s in chosen if not getattr(s, "required", False)]
    for sink in required:
        sink.publish(summary, layout)
    failed = []
    for sink in others:
        before = summary.tracking.get(sink.name) or {}
        try:
            info = sink.publish(summary, layout) or {}
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")[:2000]
            progress.say("sinks", f"{sink.name} failed: {error}")
            failed.append(sink.name)
            summary.tracking[sink.name] = {**before, "status": FAILED, "error": error}
            continue
        summary.tracking[sink.name] = {**before, **info, "status": SUCCEEDED, "error": None}
    if others:  # the summary again, with what the others recorded
        for sink in required:
            rewrite = getattr(sink, "publish_summary", None)
            if rewrite is not None:
                rewrite(summary, layout)
    return failed


def outcome_lines(summary: RunSummary) -> list[str]:
    """One line per tracking sink for the console: where to look, or why it failed."""
    lines = []
    for name, outcome in sorted(summary.tracking.items()):
        if outcome.get("status") == FAILED:
            lines.append(f"{name}: FAILED (the run went on): {outcome.get('error')}")
        elif outcome.get("skipped"):
            lines.append(f"{name}: nothing sent: {outcome['skipped']}")
        elif name == "mlflow":
            lines.append(f"mlflow: run {outcome.get('run_id')} in experiment {outcome.get('experiment')}"
                         + (f"; view: {outcome['view']}" if outcome.get("view") else f" at {outcome.get('uri')}"))
        elif name == "cloudwatch":
            lines.append(f"cloudwatch: {outcome.get('metrics')} metrics in namespace {outcome.get('namespace')}"
                         + (f"; dashboard {outcome['dashboard']}" if outcome.get("dashboard") else ""))
    return lines
