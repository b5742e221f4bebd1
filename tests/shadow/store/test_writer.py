"""shadow.store.writer: preparing, writing in batches, surviving locks, opening for reading."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from comparators import Comparison, Difference, Kind, Payload, Verdict
from shadow.errors import StoreError
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.records import difference_rows, exchange_row
from shadow.store.schema import SCHEMA_VERSION
from shadow.store.writer import Run, StoreWriter, connect, ensure_writable, open_for_reading

JSON = (("content-type", "application/json"),)

# Opens the file read-write (taking DuckDB's file lock), says so, holds it until stdin closes.
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
con.close()
"""


def rows(n: int, run_id: str = "r1", start: int = 0) -> list[tuple[tuple[Any, ...], list[Any]]]:
    out = []
    for i in range(start, start + n):
        ex = Exchange(
            id=f"ex{i}",
            request=Request("GET", f"/api/analysis/{i}"),
            primary=BackendResponse(Payload(200, JSON, b'{"a": 1}'), elapsed_ms=1.5),
            candidate=BackendResponse(Payload(200, JSON, b'{"a": 2}'), elapsed_ms=2.5),
            endpoint="GET /api/analysis/{id}",
            started_at=1_700_000_000.0 + i,
        )
        cmp = Comparison(
            Verdict.DIFFER, (Difference("$.a", Kind.VALUE_CHANGED, 1, 2),), body_kind="json"
        )
        out.append((exchange_row(ex, cmp, run_id), difference_rows(ex, cmp, run_id)))
    return out


def add(writer: StoreWriter, items: list[tuple[tuple[Any, ...], list[Any]]]) -> None:
    for ex_row, diff_rows in items:
        writer.add(ex_row, diff_rows)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = open_for_reading(str(path), wait=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_prepare_creates_latest_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ensure_writable(str(db))
    assert db.exists()
    assert query(db, "SELECT value FROM shadow_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    tables = {r[0] for r in query(db, "SELECT table_name FROM duckdb_tables()")}
    assert {"shadow_meta", "runs", "exchanges", "differences"} <= tables
    ensure_writable(str(db))  # again: no error, the same version
    assert query(db, "SELECT count(*) FROM shadow_meta") == [(1,)]


def test_prepare_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ensure_writable(str(tmp_path / "no" / "such" / "x.duckdb"))


def test_ensure_writable_refuses_non_duckdb_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreError, match="is not a DuckDB database") as info:
        ensure_writable(str(bad))
    assert "\n" not in str(info.value)


def test_writer_writes_runs_exchanges_differences(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    writer = StoreWriter(str(db))
    run = Run("r1", "proxy", 1_700_000_000.0, primary_url="http://p", candidate_url="http://c")
    writer.run_changed(run)
    add(writer, rows(3))
    assert writer.pending == 3
    assert writer.flush() == 3
    assert writer.pending == 0
    assert writer.written == 3
    assert query(db, "SELECT run_id, source, primary_url, candidate_url, exchanges FROM runs") == [
        ("r1", "proxy", "http://p", "http://c", 0)
    ]
    got = query(db, "SELECT exchange_id, verdict, diff_count, primary_ms FROM exchanges ORDER BY 1")
    assert got == [(f"ex{i}", "differ", 1, 1.5) for i in range(3)]
    diffs = query(
        db, "SELECT exchange_id, path, kind, primary_value, candidate_value FROM differences"
    )
    assert sorted(diffs) == [(f"ex{i}", "$.a", "value_changed", "1", "2") for i in range(3)]
    # run updates replace the row
    run.exchanges = 3
    run.ended_at = 1_700_000_100.0
    writer.run_changed(run)
    assert writer.flush() == 0
    assert query(db, "SELECT exchanges, ended_at IS NOT NULL FROM runs") == [(3, True)]


def test_flush_with_nothing_is_a_no_op(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path / "n.duckdb"))
    assert writer.flush() == 0
    assert writer.written == 0


def test_timestamps_are_stored_as_utc(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    writer = StoreWriter(str(db))
    add(writer, rows(1))
    writer.flush()
    (ts,) = query(db, "SELECT strftime(ts, '%Y-%m-%d %H:%M:%S') FROM exchanges")[0]
    assert ts == "2023-11-14 22:13:20"  # 1_700_000_000 UTC


def test_failed_flush_keeps_rows_until_lock_is_released(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    writer = StoreWriter(str(db), lock_wait=0.3)
    writer.run_changed(Run("r1", "proxy", time.time()))
    add(writer, rows(2))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        start = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process"):
            writer.flush()
        assert time.monotonic() - start < 5
        assert writer.pending == 2
        # newer rows go behind the restored ones
        add(writer, rows(1, start=2))
        with pytest.raises(StoreError):
            writer.flush()
        assert writer.pending == 3
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert holder.returncode == 0
    assert writer.flush() == 3
    assert writer.pending == 0
    assert query(db, "SELECT exchange_id FROM exchanges ORDER BY exchange_id") == [
        ("ex0",),
        ("ex1",),
        ("ex2",),
    ]
    assert query(db, "SELECT count(*) FROM differences") == [(3,)]
    assert query(db, "SELECT run_id FROM runs") == [("r1",)]


def test_detach_and_restore_keep_order(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path / "o.duckdb"))
    first, second = rows(2), rows(1, start=2)
    add(writer, first)
    batch = writer.detach()
    assert writer.pending == 0
    add(writer, second)
    writer.restore(batch)
    assert writer.pending == 3
    again = writer.detach()
    assert [r[0] for r in again.exchanges] == ["ex0", "ex1", "ex2"]


def test_open_for_reading_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.duckdb")
    with pytest.raises(StoreError, match="does not exist") as info:
        open_for_reading(path)
    assert path in str(info.value)
    assert not (tmp_path / "missing.duckdb").exists()


def test_open_for_reading_non_duckdb_file(tmp_path: Path) -> None:
    path = tmp_path / "text.duckdb"
    path.write_text("hello, I am a text file\n" * 100)
    with pytest.raises(StoreError) as info:
        open_for_reading(str(path), wait=1)
    assert str(info.value) == f"{path} is not a DuckDB database"


def test_open_for_reading_empty_duckdb_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(StoreError) as info:
        open_for_reading(str(path), wait=1)
    assert str(info.value) == f"{path} is a DuckDB file but holds no shadow data"


def test_connect_read_only_missing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        connect(str(tmp_path / "x.duckdb"), read_only=True)


def test_reader_opens_between_writer_flushes(tmp_path: Path) -> None:
    db = tmp_path / "live.duckdb"
    writer = StoreWriter(str(db))
    add(writer, rows(1))
    writer.flush()
    # the writer object is alive but does not hold the file: another process can read it
    reader = (
        "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute('SELECT count(*) FROM exchanges').fetchone()[0]); c.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, str(db)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    # and in this process, a reader in between two flushes
    assert query(db, "SELECT count(*) FROM exchanges") == [(1,)]
    add(writer, rows(2, start=1))
    assert writer.flush() == 2
    assert query(db, "SELECT count(*) FROM exchanges") == [(3,)]


def test_spill_keeps_rows_that_could_not_be_written(tmp_path: Path) -> None:
    """The last resort when the store stays locked at shutdown: rows go to a JSON Lines file."""
    import json as _json

    from shadow.store.rows import DifferenceRow, ExchangeRow
    from shadow.store.writer import Run, StoreWriter

    writer = StoreWriter(str(tmp_path / "s.duckdb"))
    writer.run_changed(Run("r", "proxy", 0.0))
    ex_row = ExchangeRow._make(f"v{i}" for i in range(len(ExchangeRow._fields)))
    diff_row = DifferenceRow._make(f"d{i}" for i in range(len(DifferenceRow._fields)))
    writer.add(ex_row, [diff_row])
    spill = tmp_path / "left.jsonl"
    writer.spill(writer.detach(), str(spill))
    lines = [_json.loads(line) for line in spill.read_text().splitlines()]
    assert [x["table"] for x in lines] == ["exchanges", "differences"]
    assert lines[0]["exchange_id"] == "v0" and lines[1]["path"] == "d3"


def _exchange_row(key: str, run_id: str = "r") -> Any:
    ex = Exchange(
        id=key,
        request=Request("GET", "/a"),
        primary=BackendResponse(Payload(200, (), b"{}")),
        candidate=BackendResponse(Payload(200, (), b"{}")),
        endpoint="GET /a",
        started_at=time.time(),
    )
    return exchange_row(ex, Comparison(Verdict.MATCH), run_id, 1000)


def test_finish_run_accounts_rows_spill_and_shed(tmp_path: Path) -> None:
    from shadow.store.writer import finish_run, spill_path

    db = str(tmp_path / "a.duckdb")
    writer = StoreWriter(db)
    writer.run_changed(Run("r", "proxy", time.time()))
    for key in ("a", "b", "c"):
        writer.add(_exchange_row(key))
    writer.flush()
    # Two rows the store would not take, as the pipeline spills them.
    writer.add(_exchange_row("d"))
    writer.add(_exchange_row("e"))
    writer.spill(writer.detach(), spill_path(db, "r"))

    a = finish_run(db, "r", requests=10, shed=1, restarts=2)
    assert (a.requests, a.stored, a.spilled, a.shed, a.lost) == (10, 3, 2, 1, 4)
    con = open_for_reading(db)
    try:
        row = con.execute(
            "SELECT exchanges, rows_spilled, requests, requests_shed, requests_lost, "
            "worker_restarts, copies_dropped, ended_at IS NOT NULL FROM runs"
        ).fetchone()
    finally:
        con.close()
    assert row == (3, 2, 10, 1, 4, 2, 1, True)


def test_finish_run_without_a_run_row_still_records_the_loss(tmp_path: Path) -> None:
    from shadow.store.writer import finish_run

    db = str(tmp_path / "n.duckdb")
    ensure_writable(db)
    a = finish_run(db, "gone", requests=7, shed=0, restarts=0)
    assert a.lost == 7
    con = open_for_reading(db)
    try:
        assert con.execute("SELECT run_id, requests_lost FROM runs").fetchall() == [("gone", 7)]
    finally:
        con.close()


def test_spilled_exchanges_counts_only_exchange_lines(tmp_path: Path) -> None:
    from shadow.store.writer import spilled_exchanges

    spill = tmp_path / "x.jsonl"
    assert spilled_exchanges(str(spill)) == 0  # no file: nothing spilled
    spill.write_text(
        '{"table": "exchanges", "exchange_id": "1"}\n'
        '{"table": "differences", "exchange_id": "1"}\n'
        '{"table": "exchanges", "exchange_id": "2"}\n',
        encoding="utf-8",
    )
    assert spilled_exchanges(str(spill)) == 2


def test_writer_connection_has_a_memory_limit(tmp_path: Path) -> None:
    db = str(tmp_path / "m.duckdb")
    writer = StoreWriter(db)
    writer.run_changed(Run("r", "proxy", time.time()))
    writer.write(writer.detach())  # opens and keeps the connection
    assert writer._con is not None
    limit = writer._con.execute("SELECT current_setting('memory_limit')").fetchone()
    writer.release()
    assert limit == ("244.1 MiB",)  # 256 MB
