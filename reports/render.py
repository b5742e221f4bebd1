"""The Jinja2 environment (autoescaped, strict) and writing the report file."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import jinja2

from reports.context import ReportContext, Summary, build_context
from shadow.store import reading


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: int | None) -> str:
    return "0" if value is None else f"{value:,}"


def _ts(value: Any) -> str:
    return "-" if value is None else str(value)[:19]


def _parity_class(value: float | None) -> str:
    if value is None:
        return "na"
    if value >= 99.5:
        return "good"
    if value >= 90:
        return "warn"
    return "bad"


FILTERS = {"pct": _pct, "ms": _ms, "num": _num, "ts": _ts, "parity_class": _parity_class}


def environment() -> jinja2.Environment:
    """The one place templates are configured and filters registered."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_html(context: ReportContext) -> str:
    return environment().get_template("report.html").render(r=context)


def render_report(db_path: str, output: str, run_id: str | None = None) -> Summary:
    """Query the store, render the report, write it atomically; return the summary."""
    # Leave the block before rendering: a live writer is waiting for the file.
    with reading(db_path) as con:
        context = build_context(con, db_path, run_id)
    html = render_html(context)
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(html)
    os.replace(tmp, output)
    return context.summary
