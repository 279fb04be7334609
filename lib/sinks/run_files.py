"""The run's own files: `summary.json` and `report.html`, written here and nowhere else."""

from __future__ import annotations

from lib import reports, storage
from lib.run.layout import RunLayout
from lib.run.records import RunSummary


class RunFilesSink:
    name = "run-files"
    required = True  # without its summary a run has no result

    def publish(self, summary: RunSummary, layout: RunLayout) -> None:
        storage.write_json(layout.summary, summary.to_dict())
        storage.write_text(layout.report, reports.run_report_html(summary, layout),
                           "text/html; charset=utf-8")
