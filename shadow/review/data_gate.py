"""Tables compared by `shadow data diff`, for `shadow check --max-data-differences N`.

Every table of `shadow_data_tables(run)` (the one definition of the data figures,
`shadow/store/sql/outcomes.sql`: with no run, each table's latest diff) is a line of the
gate: FAIL when its `differing_rows` (rows only in old, only in new, changed, and keys
held by more than one row) are more than N, PASS otherwise. shadow.review.gate fails on
any FAIL and writes the tables as a JUnit testsuite 'shadow data'. Asking for the data
gate where there is no table diff is a ConfigError: a gate that checks nothing passes
nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from shadow.errors import ConfigError

PASS, FAIL = "PASS", "FAIL"
FLAG = "--max-data-differences"

# Parameter: the run id (NULL for all runs: each table's latest diff). Failing first is
# the caller's order; here by name.
DATA_TABLES_QUERY = """
SELECT table_name, run_id, old_table, new_table, old_rows, new_rows, missing_rows,
       extra_rows, changed_rows, duplicate_keys, in_flight, differing_rows, rows_dropped
FROM shadow_data_tables(CAST(? AS VARCHAR))
ORDER BY table_name
"""
# Names come from databases: no control characters in a log line, none XML cannot hold.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class DataTableResult:
    """One table's figures (as `shadow_data_tables` gives them) judged against N."""

    table: str
    run_id: str
    old_table: str
    new_table: str
    old_rows: int
    new_rows: int
    missing_rows: int  # only in old
    extra_rows: int  # only in new
    changed_rows: int
    duplicate_keys: int
    in_flight: int
    differing_rows: int
    rows_dropped: int
    max_differences: int
    result: str

    @property
    def parts(self) -> str:
        """What the differing rows are, e.g. '2 changed, 1 only in old, ...'."""
        return (
            f"{self.changed_rows} changed, {self.missing_rows} only in old, "
            f"{self.extra_rows} only in new, {self.duplicate_keys} duplicate keys"
        )

    @property
    def why(self) -> str:
        text = ""
        if self.result == FAIL:
            text = f"{self.differing_rows} differing rows > {self.max_differences} ({self.parts})"
        if self.in_flight:
            text += f"{'; ' if text else ''}{self.in_flight} keys in flight not compared"
        return text


def parse_max_differences(value: str | int) -> int:
    """N of `--max-data-differences N`: a whole number >= 0 (ConfigError otherwise)."""
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text):
        raise ConfigError(f"{FLAG} {str(value)!r}: expected a whole number of rows, 0 or more")
    return int(text)


def fetch_data_tables(
    con: duckdb.DuckDBPyConnection, run_id: str | None, max_differences: int, db: str = "DB"
) -> list[DataTableResult]:
    """Judge each table of `shadow_data_tables(run_id)`; ConfigError when there is none.

    `con` comes from `shadow.store.writer.reading` (the data macros installed); call
    `gate.fetch_rows` first, which refuses an unknown `run_id`.
    """
    found = con.execute(DATA_TABLES_QUERY, [run_id]).fetchall()
    if not found:
        where = f"run {run_id} of {db}" if run_id is not None else db
        raise ConfigError(f"{FLAG}: no data comparison in {where} (run shadow data diff first)")
    out = []
    for row in found:
        name, run, old_table, new_table = (str(v) if v is not None else "" for v in row[:4])
        n = [int(v or 0) for v in row[4:]]
        differing = n[7]
        out.append(
            DataTableResult(
                table=name, run_id=run, old_table=old_table or name, new_table=new_table or name,
                old_rows=n[0], new_rows=n[1], missing_rows=n[2], extra_rows=n[3],
                changed_rows=n[4], duplicate_keys=n[5], in_flight=n[6], differing_rows=differing,
                rows_dropped=n[8], max_differences=max_differences,
                result=FAIL if differing > max_differences else PASS,
            )
        )  # fmt: skip
    return sorted(out, key=lambda r: (r.result != FAIL, r.table))


HEADER = ("data table", "old rows", "new rows", "differing", "threshold", "result", "why")


def format_data_table(results: Sequence[DataTableResult]) -> str:
    """A plain-text table for CI logs, as the endpoint table (numbers right-aligned)."""
    rows = [HEADER] + [
        (
            _one_line(r.table),
            str(r.old_rows),
            str(r.new_rows),
            str(r.differing_rows),
            str(r.max_differences),
            r.result,
            _one_line(r.why),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {1, 2, 3, 4}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def counts(results: Sequence[DataTableResult]) -> tuple[int, int]:
    """(passed, failed) tables."""
    failed = sum(1 for r in results if r.result == FAIL)
    return len(results) - failed, failed


def summary_part(results: Sequence[DataTableResult]) -> str:
    """The data gate's part of the summary line, e.g. 'data tables: 1 passed, 1 failed'."""
    ok, failed = counts(results)
    return f"data tables: {ok} passed, {failed} failed"


def data_suite(root: ET.Element, results: Sequence[DataTableResult], run_id: str | None) -> None:
    """JUnit: a testsuite 'shadow data', one testcase per table, failing above N."""
    _, failed = counts(results)
    values = {"tests": str(len(results)), "failures": str(failed), "errors": "0", "skipped": "0"}
    suite = ET.SubElement(root, "testsuite", {"name": "shadow data", **values, "time": "0"})
    props = ET.SubElement(suite, "properties")
    if results:
        n = str(results[0].max_differences)
        ET.SubElement(props, "property", {"name": "max_data_differences", "value": n})
    ET.SubElement(props, "property", {"name": "run", "value": run_id or "all"})
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": "shadow.data", "name": _xml_text(r.table), "time": "0"},
        )
        detail = _xml_text(
            f"table={r.table} old_table={r.old_table} new_table={r.new_table} run={r.run_id} "
            f"old_rows={r.old_rows} new_rows={r.new_rows} differing_rows={r.differing_rows} "
            f"changed={r.changed_rows} only_in_old={r.missing_rows} only_in_new={r.extra_rows} "
            f"duplicate_keys={r.duplicate_keys} in_flight={r.in_flight} "
            f"rows_not_stored={r.rows_dropped} max_data_differences={r.max_differences}"
        )
        if r.result == FAIL:
            ET.SubElement(
                case, "failure", {"message": _xml_text(r.why), "type": "DataDifferences"}
            ).text = detail
        ET.SubElement(case, "system-out").text = detail


__all__ = [
    "DATA_TABLES_QUERY",
    "FAIL",
    "FLAG",
    "PASS",
    "DataTableResult",
    "counts",
    "data_suite",
    "fetch_data_tables",
    "format_data_table",
    "parse_max_differences",
    "summary_part",
]
