"""shadow.export: every table to Parquet via DuckDB COPY, read back with read_parquet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest

from comparators import Comparison, Difference, Kind, Payload, Verdict
from shadow.errors import ConfigError
from shadow.export import TABLES, export_tables
from shadow.model import BackendResponse, Exchange, Request
from shadow.records import difference_rows, exchange_row
from shadow.schema import CREATE_META, SET_VERSION
from shadow.store import Run, StoreWriter, reading

JSON = (("content-type", "application/json"),)
DIFFS = (
    Difference("$.a", Kind.VALUE_CHANGED, 1, 2),
    Difference("$.b", Kind.REMOVED, "it's", None),
)


def build(path: Path) -> str:
    writer = StoreWriter(str(path))
    for run_id in ("r1", "o'brien"):
        writer.run_changed(Run(run_id, "proxy", 1_714_640_000.0))
    for i in range(30):
        run_id = "r1" if i < 20 else "o'brien"
        verdict = Verdict.DIFFER if i % 3 == 0 else Verdict.MATCH
        ex = Exchange(
            id=f"ex{i}",
            request=Request("GET", f"/api/items/{i}"),
            primary=BackendResponse(Payload(200, JSON, b'{"a": 1}'), 1.0 + i),
            candidate=BackendResponse(Payload(200, JSON, b'{"a": 2}'), 2.0 + i),
            endpoint="GET /api/items/{id}",
            started_at=1_714_640_000.0 + i,
        )
        cmp = Comparison(verdict, DIFFS if verdict is Verdict.DIFFER else (), body_kind="json")
        noise = [(ex.id, run_id, ex.endpoint, "$.t", "$.t", "value_changed")] if i % 5 == 0 else []
        writer.add(exchange_row(ex, cmp, run_id), difference_rows(ex, cmp, run_id), noise)
    writer.flush()
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build(tmp_path_factory.mktemp("export") / "shadow.duckdb")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


def test_every_table_round_trips(store: str, tmp_path: Path) -> None:
    out = tmp_path / "new" / "parquet"
    with reading(store) as con:
        written = export_tables(con, str(out))
        expected = {t: scalar(con, f"SELECT count(*) FROM {t}") for t in TABLES}
    assert [w.table for w in written] == list(TABLES)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    assert expected == {"runs": 2, "exchanges": 30, "differences": 20, "noise_differences": 6}
    check = duckdb.connect()
    for w in written:
        assert w.path == str(out / f"{w.table}.parquet")
        assert w.rows == expected[w.table]
        assert scalar(check, "SELECT count(*) FROM read_parquet(?)", [w.path]) == w.rows
    # columns and values survive, not just counts
    with reading(store) as con:
        cols = [d[0] for d in con.execute("SELECT * FROM exchanges LIMIT 0").description]
    parquet = check.execute("SELECT * FROM read_parquet(?)", [str(out / "exchanges.parquet")])
    assert [d[0] for d in parquet.description] == cols
    removed = check.execute(
        "SELECT primary_value FROM read_parquet(?) WHERE kind = 'removed' LIMIT 1",
        [str(out / "differences.parquet")],
    ).fetchone()
    assert removed == ('"it\'s"',)


def test_run_filter_and_quotes_in_run_ids(store: str, tmp_path: Path) -> None:
    with reading(store) as con:
        written = {w.table: w.rows for w in export_tables(con, str(tmp_path), run_id="o'brien")}
    assert written == {"runs": 1, "exchanges": 10, "differences": 6, "noise_differences": 2}
    check = duckdb.connect()
    runs = check.execute(
        "SELECT DISTINCT run_id FROM read_parquet(?)", [str(tmp_path / "exchanges.parquet")]
    ).fetchall()
    assert runs == [("o'brien",)]


def test_existing_files_are_replaced_and_no_temporary_files_remain(
    store: str, tmp_path: Path
) -> None:
    (tmp_path / "exchanges.parquet").write_text("old")
    with reading(store) as con:
        export_tables(con, str(tmp_path), run_id="r1")
        export_tables(con, str(tmp_path))
    assert not list(tmp_path.glob("*.tmp"))
    check = duckdb.connect()
    n = scalar(check, "SELECT count(*) FROM read_parquet(?)", [str(tmp_path / "exchanges.parquet")])
    assert n == 30


def test_a_directory_with_a_quote_in_its_name(store: str, tmp_path: Path) -> None:
    out = tmp_path / "it's here"
    with reading(store) as con:
        written = export_tables(con, str(out))
    assert all(Path(w.path).exists() for w in written)


def test_bad_requests_are_config_errors(store: str, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with reading(store) as con:
        with pytest.raises(ConfigError, match="no such run"):
            export_tables(con, str(tmp_path / "out"), run_id="nope")
        with pytest.raises(ConfigError, match="not a directory"):
            export_tables(con, str(a_file))
        with pytest.raises(ConfigError, match="cannot create"):
            export_tables(con, str(a_file / "below"))
        with pytest.raises(ConfigError, match="--format"):
            export_tables(con, str(tmp_path / "out"), fmt="xlsx")
    assert not (tmp_path / "out").exists()


def test_a_version_1_store_has_no_noise_table(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(CREATE_META)
    con.execute(resources.files("shadow").joinpath("sql/001_initial.sql").read_text("utf-8"))
    con.execute(SET_VERSION, ["1"])
    con.execute(
        "INSERT INTO runs (run_id, source, started_at) VALUES ('r', 'proxy', now()::TIMESTAMP)"
    )
    con.close()
    with reading(str(path)) as ro:
        written = export_tables(ro, str(tmp_path / "out"))
    assert [(w.table, w.rows) for w in written] == [
        ("runs", 1),
        ("exchanges", 0),
        ("differences", 0),
    ]
