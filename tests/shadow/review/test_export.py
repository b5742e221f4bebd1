"""shadow.review.export: every table to Parquet via DuckDB COPY, read back with read_parquet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shadow.errors import ConfigError, StoreError
from shadow.review import gate
from shadow.review.export import OUTCOMES, TABLES, export_tables
from shadow.store.schema import CREATE_META, SET_VERSION
from shadow.store.writer import migrate_file, open_for_reading, reading
from tests.store_builder import Call, write_store

ENDPOINT = "GET /api/items/{id}"
N, IN_R1 = 30, 20  # exchanges; the first IN_R1 in run r1, the rest in run o'brien
RUNS = ("r1", "o'brien")
# every third exchange differs: $.a changes (real), $.b is removed (accepted by the config)
DIFFER = [i for i in range(N) if i % 3 == 0]
# every fifth has a secondary that changes $.t: noise evidence, not a candidate difference
SECONDARY = [i for i in range(N) if i % 5 == 0]
CONFIG = {
    "accepted": [{"endpoint": ENDPOINT, "path": "$.b", "kind": "removed", "reason": "b is gone"}]
}


def calls() -> list[Call]:
    out = []
    for i in range(N):
        primary = {"a": 1, "b": "it's", "t": 1}
        candidate = {"a": 2, "t": 1} if i in DIFFER else dict(primary)
        secondary = {"a": 1, "b": "it's", "t": 2} if i in SECONDARY else None
        run_id = RUNS[0] if i < IN_R1 else RUNS[1]
        out.append(Call(ENDPOINT, primary, candidate, secondary, run_id=run_id, primary_ms=1.0 + i))
    return out


def build(path: Path) -> str:
    return write_store(path, calls(), config=CONFIG, runs=RUNS)


def expected_rows(run: str | None = None) -> dict[str, int]:
    """Rows each table should hold, from the fixture's design (None: every run)."""
    ids = [i for i in range(N) if run is None or (i < IN_R1) == (run == RUNS[0])]
    runs = 1 if run else len(RUNS)
    differ = sum(i in DIFFER for i in ids)
    return {
        "runs": runs,
        "exchanges": len(ids),
        "differences": 2 * differ,
        "noise_differences": sum(i in SECONDARY for i in ids),
        "run_accepted": runs * len(CONFIG["accepted"]),
        "conversations": 0,  # no WebSocket or event stream in this fixture
        "exchange_outcomes": len(ids),
        "difference_outcomes": 2 * differ,
        "endpoint_outcomes": 1,
    }


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
        expected |= {n: scalar(con, f"SELECT count(*) FROM {m}(NULL)") for n, m in OUTCOMES.items()}
    names = [*TABLES, *OUTCOMES]
    assert [w.table for w in written] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in names)
    assert expected == expected_rows()
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
    assert written == expected_rows("o'brien")
    check = duckdb.connect()
    for table in ("exchanges", "exchange_outcomes", "difference_outcomes", "run_accepted"):
        runs = check.execute(
            "SELECT DISTINCT run_id FROM read_parquet(?)", [str(tmp_path / f"{table}.parquet")]
        ).fetchall()
        assert runs == [("o'brien",)], table


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


def test_a_version_1_store_is_refused_until_migrated(tmp_path: Path) -> None:
    """Readers never write: an old store needs `shadow migrate`, then exports every table."""
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(CREATE_META)
    con.execute(resources.files("shadow.store").joinpath("sql/001_initial.sql").read_text("utf-8"))
    con.execute(SET_VERSION, ["1"])
    con.execute(
        "INSERT INTO runs (run_id, source, started_at) VALUES ('r', 'proxy', now()::TIMESTAMP)"
    )
    con.close()
    with pytest.raises(StoreError, match=r"schema version 1 .*`shadow migrate --db "):
        open_for_reading(str(path))
    assert migrate_file(str(path))[0] == 1
    with reading(str(path)) as ro:
        written = export_tables(ro, str(tmp_path / "out"))
    assert [(w.table, w.rows) for w in written] == [
        ("runs", 1),
        ("exchanges", 0),
        ("differences", 0),
        ("noise_differences", 0),
        ("run_accepted", 0),
        ("conversations", 0),
        ("exchange_outcomes", 0),
        ("difference_outcomes", 0),
        ("endpoint_outcomes", 0),
    ]


# --- the judged outcomes ------------------------------------------------------------------


def noisy_calls() -> list[Call]:
    """Statistical noise, known only at read time, and a real difference elsewhere.

    GET /api/rank/{id}: 20 exchanges, each with a secondary. The secondary changes
    $.rank in the first 5, the candidate in 3 others: never in the same exchange, so
    each is written as `differ`; over all 20 (McNemar) $.rank is noise, so judged a match.
    GET /api/price/{id}: the candidate changes $.price in 4 of 25, with no secondary: real.
    """
    out = []
    for i in range(20):
        secondary = {"rank": 2} if i < 5 else {"rank": 1}
        candidate = {"rank": 3} if 5 <= i < 8 else {"rank": 1}
        out.append(Call("GET /api/rank/{id}", {"rank": 1}, candidate, secondary))
    for i in range(25):
        out.append(Call("GET /api/price/{id}", {"price": 10}, {"price": 11 if i < 4 else 10}))
    return out


@pytest.mark.parametrize("run", [None, "r1"])
def test_exported_endpoint_outcomes_have_the_gates_parity(tmp_path: Path, run: str | None) -> None:
    db = write_store(tmp_path / "noisy.duckdb", noisy_calls())
    with reading(db) as con:
        export_tables(con, str(tmp_path / "out"), run_id=run)
        rows = {r["endpoint"]: r for r in gate.fetch_rows(con, run)}
    check = duckdb.connect()
    exported = {
        endpoint: (parity, matched, differed)
        for endpoint, parity, matched, differed in check.execute(
            "SELECT endpoint, parity, matched, differed FROM read_parquet(?)",
            [str(tmp_path / "out" / "endpoint_outcomes.parquet")],
        ).fetchall()
    }
    assert exported == {e: (r["parity"], r["matched"], r["differed"]) for e, r in rows.items()}
    assert exported["GET /api/rank/{id}"] == (100.0, 20, 0)
    assert exported["GET /api/price/{id}"] == (100.0 * 21 / 25, 21, 4)
    # the exported exchanges carry both verdicts: judged, and as written
    verdicts = check.execute(
        "SELECT provisional_verdict, verdict, count(*) FROM read_parquet(?) "
        "WHERE endpoint = 'GET /api/rank/{id}' GROUP BY ALL ORDER BY ALL",
        [str(tmp_path / "out" / "exchange_outcomes.parquet")],
    ).fetchall()
    assert verdicts == [("differ", "match", 3), ("match", "match", 17)]
    statuses = check.execute(
        "SELECT endpoint, status, count(*) FROM read_parquet(?) GROUP BY ALL ORDER BY ALL",
        [str(tmp_path / "out" / "difference_outcomes.parquet")],
    ).fetchall()
    assert statuses == [("GET /api/price/{id}", "real", 4), ("GET /api/rank/{id}", "noise", 3)]
