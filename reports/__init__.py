"""HTML parity reports rendered from a shadow DuckDB store."""

from reports.context import ReportContext, Summary, build_context
from reports.render import environment, render_html, render_report

__all__ = [
    "ReportContext",
    "Summary",
    "build_context",
    "environment",
    "render_html",
    "render_report",
]
