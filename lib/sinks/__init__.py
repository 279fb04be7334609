"""Where a run's records go once they change: the run's own files today; MLflow or CloudWatch are
one more module here, listed in `SINKS`.

A sink receives the same typed `RunSummary` every time the summary changes (after select, after
register) and the run's `RunLayout`. A sink that fails says so and does not stop the others.
"""

from __future__ import annotations

from typing import Protocol

from lib import progress
from lib.run.layout import RunLayout
from lib.run.records import RunSummary


class Sink(Protocol):
    name: str

    def publish(self, summary: RunSummary, layout: RunLayout) -> None:
        """Record ``summary``; called again with the newer summary whenever it changes."""


def default_sinks() -> list[Sink]:
    from lib.sinks.run_files import RunFilesSink

    return [RunFilesSink()]


def publish(summary: RunSummary, layout: RunLayout, sinks: list[Sink] | None = None) -> list[str]:
    """Hand ``summary`` to every sink; the names of those that failed (the run's files raise instead:
    a summary that cannot be written is not a run that succeeded)."""
    failed = []
    for sink in default_sinks() if sinks is None else sinks:
        try:
            sink.publish(summary, layout)
        except Exception as exc:
            if getattr(sink, "required", False):
                raise
            progress.say("sinks", f"{sink.name} failed: {type(exc).__name__}: {exc}")
            failed.append(sink.name)
    return failed
