"""The run's own files: `summary.json` and `report.html`, written here and nowhere else."""

from __future__ import annotations

from lib import reports, storage
from lib.run.layout import RunLayout
from lib.run.records import PENDING, RunSummary


class RunFilesSink:
    name = "run-files"
    required = True  # without its summary a run has no result

    def publish(self, summary: RunSummary, layout: RunLayout) -> None:
        self.publish_summary(summary, layout)
        if summary.registry is not None and summary.registry.status == PENDING:
            return  # register writes the page once it knows how registering went (it reads every record)
        storage.write_text(layout.report, reports.run_report_html(summary, layout),
                           "text/html; charset=utf-8")

    def publish_summary(self, summary: RunSummary, layout: RunLayout) -> None:
        """`summary.json` alone: again after the other sinks, with what they recorded."""
        storage.write_json(layout.summary, summary.to_dict())
