"""HTML reports: fmeval's per model x algorithm page and the run's comparison page."""

from lib.reports.pages import algorithm_html
from lib.reports.run_page import run_report_html

__all__ = ["algorithm_html", "run_report_html"]
