"""The Jinja2 environment (autoescaped, strict) and writing the report file."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jinja2

from reports import queries
from reports._sql import rows
from reports.baseline import Snapshot, latest_run, require_run, snapshot
from reports.context import ReportContext, Summary, build_context
from reports.cutover import MODES
from shadow.errors import ConfigError, StoreError
from shadow.store.writer import reading

if TYPE_CHECKING:
    from shadow.config.loader import Accepted


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: int | None) -> str:
    return "0" if value is None else f"{value:,}"


def _ts(value: Any) -> str:
    return "-" if value is None else str(value)[:19]


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _pp(value: float | None) -> str:
    """A change in percentage points, signed."""
    return "n/a" if value is None else f"{value:+.1f} pp"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}\u00d7"


def _frac(value: float | None) -> str:
    """A fraction (0..1, as the cutover figures give rates) shown as a percentage."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _raw(value: float | None) -> str:
    """A data-v attribute with the exact value SQL gave (empty for NULL)."""
    return "" if value is None else repr(value)


def _mode_class(mode: str | None) -> str:
    return mode if mode in MODES else "other"


def _sort_num(value: float | None) -> str:
    """A data-v attribute for the table's sorting: missing values sort first."""
    return "-1" if value is None else f"{value:.6g}"


def _parity_class(value: float | None) -> str:
    if value is None:
        return "na"
    if value >= 99.5:
        return "good"
    if value >= 90:
        return "warn"
    return "bad"


def _ratio_class(value: float | None) -> str:
    if value is None:
        return "na"
    return "bad" if value >= 1.5 else "warn" if value >= 1.1 else "good"


CHANGE_MARKS = {"worse": "▼ worse", "better": "▲ better", "same": "= same", "new": "new",
                "removed": "removed"}  # fmt: skip

OUTCOMES = {"candidate_error": "candidate error", "tolerated": "noise/accepted only"}

FILTERS = {
    "pct": _pct,
    "ms": _ms,
    "num": _num,
    "ts": _ts,
    "secs": _secs,
    "pp": _pp,
    "ratio": _ratio,
    "frac": _frac,
    "raw": _raw,
    "mode_class": _mode_class,
    "sort_num": _sort_num,
    "parity_class": _parity_class,
    "ratio_class": _ratio_class,
    "change_mark": lambda change: CHANGE_MARKS.get(change, change),
    "outcome": lambda outcome: OUTCOMES.get(outcome, outcome),
}


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


def render_html(context: ReportContext, template: jinja2.Template | None = None) -> str:
    return (template or environment().get_template("report.html")).render(r=context)


def _compile_meanwhile() -> Callable[[], jinja2.Template]:
    """Compile the templates in a thread while DuckDB answers (it releases the GIL)."""
    box: dict[str, Any] = {}

    def compile_now() -> None:
        try:
            box["template"] = environment().get_template("report.html")
        except Exception as exc:  # raised again where the report is rendered, once
            box["error"] = exc

    thread = threading.Thread(target=compile_now, name="shadow-templates", daemon=True)
    thread.start()

    def get() -> jinja2.Template:
        thread.join()
        if "error" in box:
            raise box["error"]
        template: jinja2.Template = box["template"]
        return template

    return get


def other_store_baseline(
    baseline_db: str, baseline: str | None, accepted: Sequence[Accepted] | None = None
) -> Snapshot:
    with reading(baseline_db, accepted=accepted) as bcon:
        run = baseline or latest_run(bcon)
        if run is None:
            raise StoreError(f"baseline store {baseline_db} holds no runs of traffic")
        require_run(bcon, run, baseline_db)
        return snapshot(bcon, run, f"run {run} of {baseline_db}")


def render_report(
    db_path: str,
    output: str,
    run_id: str | None = None,
    baseline: str | None = None,
    baseline_db: str | None = None,
    routes: Sequence[str] | None = None,
    accepted: Sequence[Accepted] | None = None,
) -> Summary:
    """Query the store, render the report, write it atomically; return the summary.

    `baseline` compares parity per endpoint with that run: a run of `db_path`, or
    of `baseline_db` when given (default there: its latest run). With a baseline
    in the same store and no `run_id`, the report covers the latest other run.
    `routes` ("METHOD /template") lists known routes, to show those never exercised.
    `accepted`: the [[accepted]] entries of the config given, applied to every run
    (None: each run's own entries); see shadow.store.outcomes.
    """
    template = _compile_meanwhile()
    base: Snapshot | None = None
    other = baseline_db is not None and os.path.abspath(baseline_db) != os.path.abspath(db_path)
    if other:
        assert baseline_db is not None
        base = other_store_baseline(baseline_db, baseline, accepted)
    # Leave the block before rendering: a live writer is waiting for the file.
    with reading(db_path, accepted=accepted) as con:
        if not other and (baseline is not None or baseline_db is not None):
            base_run = baseline or latest_run(con)
            if base_run is None:
                raise StoreError(f"{db_path} holds no runs of traffic to compare with")
            require_run(con, base_run, db_path)
            base = snapshot(con, base_run, f"run {base_run}")
            if run_id is None:
                run_id = latest_run(con, exclude=base_run)
                if run_id is None:
                    raise StoreError(f"{db_path} holds no run besides baseline {base_run!r}")
        if run_id is not None and not rows(con, queries.RUN_EXISTS, {"run": run_id})[0]["n"]:
            raise ConfigError(f"--run {run_id!r}: no such run in the database")
        context = build_context(con, db_path, run_id, routes=routes, baseline=base)
    write_atomically(output, render_html(context, template()))
    return context.summary


def write_atomically(output: str, text: str) -> None:
    """Write `output` via a temporary file, so a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise ConfigError(f"cannot write {output}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".html")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
