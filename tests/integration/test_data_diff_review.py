"""What an adversarial review of `shadow data diff` found: each case, fixed, held here.

Every case runs the real command against real SQLite files and a real PostgreSQL, and
checks that the bisecting run and `--no-bisect` find exactly the real differences.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.data_diff_helpers import (
    Found,
    Result,
    differences,
    figures,
    pg_exec,
    series,
    shadow_data_inline,
    sqlite_exec,
)

pytestmark = pytest.mark.integration


def both(*args: str, tmp_path: Path, table: str = "t") -> list[tuple[Result, Found, Any]]:
    """The diff with and without bisection: (result, differences, figures) each."""
    out = []
    for extra in ([], ["--no-bisect"]):
        db = tmp_path / f"r{len(extra)}_{uuid.uuid4().hex[:6]}.duckdb"
        res = shadow_data_inline(*args, "--db", str(db), *extra)
        assert res.code in (0, 1), res.output
        found = differences(db).get(table, set())
        out.append((res, found, figures(db, table)))
    return out


def test_a_column_named_like_the_bucket_alias(tmp_path: Path) -> None:
    # SQLite grouped by the table's column `b` instead of the segment: counts of one group
    old, new = tmp_path / "o.sqlite", tmp_path / "n.sqlite"
    for path in (old, new):
        sqlite_exec(
            path,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b INTEGER, n INTEGER, amount REAL)",
            series(1000) + "INSERT INTO t SELECT v, v % 3, v % 5, 10.0 FROM g",
        )
    sqlite_exec(
        new, "UPDATE t SET amount = 99 WHERE id IN (3, 6, 9)", "DELETE FROM t WHERE id = 30"
    )
    expected = {
        ("id=3", "amount", "value_changed"),
        ("id=6", "amount", "value_changed"),
        ("id=9", "amount", "value_changed"),
        ("id=30", None, "removed"),
    }
    args = ("--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--table", "t", "--key", "id")
    for _, found, f in both(*args, tmp_path=tmp_path):
        assert found == expected
        assert (f["old_rows"], f["new_rows"]) == (1000, 999)


def test_a_key_named_n_without_a_unique_index(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "o.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE t (n INTEGER, v TEXT)",
        series(50) + "INSERT INTO t SELECT v, 'x' FROM g",
        "INSERT INTO t VALUES (3, 'again')",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE t (n bigint, v text)",
        "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 50) g",
    )
    args = ("--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "n")
    for res, found, _ in both(*args, tmp_path=tmp_path):
        assert found == {("n=3", None, "duplicate")}
        assert "$row[n=3]  duplicate  2 -> at most 1" in res.stdout


def test_sqlite_text_key_holding_numbers_against_postgres_text(
    tmp_path: Path, postgres_url: str
) -> None:
    old = tmp_path / "o.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE t (k STRING, v TEXT)",  # numeric affinity: '7' is stored as 7
        series(40) + "INSERT INTO t SELECT v, 'x' FROM g",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE t (k text PRIMARY KEY, v text)",
        "INSERT INTO t SELECT g::text, 'x' FROM generate_series(1, 40) g",
        "UPDATE t SET v = 'y' WHERE k = '7'",
    )
    args = (
        "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "k",
        "--segments", "4", "--bisection-threshold", "3",
    )  # fmt: skip
    for _, found, _ in both(*args, tmp_path=tmp_path):
        assert found == {('k="7"', "v", "value_changed")}


def test_a_nocase_key_is_ranged_in_byte_order(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "o.sqlite"
    keys = [f"{c}{i}" for i in range(40) for c in ("a", "B", "c", "D")]
    sqlite_exec(old, "CREATE TABLE t (k TEXT PRIMARY KEY COLLATE NOCASE, v TEXT)")
    sqlite_exec(old, *(f"INSERT INTO t VALUES ('{k}', 'x')" for k in keys))
    pg_exec(postgres_url, "CREATE TABLE t (k text PRIMARY KEY, v text)")
    pg_exec(postgres_url, *(f"INSERT INTO t VALUES ('{k}', 'x')" for k in keys))
    pg_exec(postgres_url, "UPDATE t SET v = 'y' WHERE k = 'c7'")
    args = (
        "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "k",
        "--segments", "4", "--bisection-threshold", "10",
    )  # fmt: skip
    for _, found, f in both(*args, tmp_path=tmp_path):
        assert found == {('k="c7"', "v", "value_changed")}
        assert f["rows_read_old"] <= len(keys)


def test_integers_from_text_keep_every_digit(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "o.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, ext TEXT)",
        "INSERT INTO t VALUES (1, '9007199254740993'), (2, '5')",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE t (id bigint PRIMARY KEY, ext int8)",
        "INSERT INTO t VALUES (1, 9007199254740992), (2, 5)",
    )
    args = ("--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "id")
    for res, found, _ in both(*args, tmp_path=tmp_path):
        assert found == {("id=1", "ext", "value_changed")}, res.output


def test_uuid_keys_and_json_holding_a_nul_escape(
    tmp_path: Path, postgres_url: str, postgres_server: Any
) -> None:
    other = postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    for url in (postgres_url, other):
        pg_exec(
            url,
            "CREATE TABLE t (id uuid PRIMARY KEY, doc json)",
            "INSERT INTO t SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, "
            '\'{"a": "\\u0000"}\' FROM generate_series(1, 30) g',
        )
    pg_exec(
        other,
        "UPDATE t SET doc = '{\"a\": 2}' WHERE id = '00000000-0000-0000-0000-000000000007'",
    )
    args = ("--old", postgres_url, "--new", other, "--table", "t", "--key", "id")
    for res, found, _ in both(*args, tmp_path=tmp_path):
        assert found == {('id="00000000-0000-0000-0000-000000000007"', "doc", "type_changed")} or (
            found == {('id="00000000-0000-0000-0000-000000000007"', "doc", "value_changed")}
        ), res.output


def test_bc_dates_and_years_past_9999(
    tmp_path: Path, postgres_url: str, postgres_server: Any
) -> None:
    other = postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    for url, bc in ((postgres_url, " BC"), (other, "")):
        pg_exec(
            url,
            "CREATE TABLE t (id int PRIMARY KEY, d date, ts timestamptz)",
            f"INSERT INTO t VALUES (1, '0044-03-15{bc}', '2024-01-01'), "
            "(2, '2024-01-01', '10000-01-01 00:00:00+00')",
        )
    old = tmp_path / "o.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP)",
        "INSERT INTO t VALUES (1, '0044-03-15', '2024-01-01 00:00:00'), "
        "(2, '2024-01-01', '10000-01-01 00:00:00+00')",
    )
    args = ("--old", postgres_url, "--new", other, "--table", "t", "--key", "id")
    for _, found, _ in both(*args, tmp_path=tmp_path):
        assert found == {("id=1", "d", "value_changed")}
    args = ("--old", f"sqlite:{old}", "--new", other, "--table", "t", "--key", "id")
    for _, found, _ in both(*args, tmp_path=tmp_path):
        assert found == set()


@pytest.mark.parametrize(
    ("make", "url", "needle"),
    [
        (None, "postgresql://u:pa ss@[::1", "--old: bad host or port in the database URL"),
        ("bad_utf8_key", None, "not UTF-8 text"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, make: str | None, url: str | None, needle: str
) -> None:
    new = url
    if make == "bad_utf8_key":
        for name, v in (("k.sqlite", "x"), ("k2.sqlite", "changed")):
            sqlite_exec(
                tmp_path / name,
                "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)",
                f"INSERT INTO t VALUES (CAST(x'61ff' AS TEXT), '{v}'), ('b', 'y')",
            )
        url, new = f"sqlite:{tmp_path / 'k.sqlite'}", f"sqlite:{tmp_path / 'k2.sqlite'}"
    assert url is not None and new is not None
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", url, "--new", new, "--table", "t", "--key", "k", "--db", str(db)
    )
    assert res.code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "pa ss" not in res.output
    assert not db.exists()


def test_sqlite_paths_are_not_read_as_uri_escapes(tmp_path: Path) -> None:
    for name in ("p%41.sqlite", "x#y.sqlite"):
        path = tmp_path / name
        sqlite_exec(
            path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a')"
        )
    (tmp_path / "pA.sqlite").write_bytes(b"")  # what an unescaped p%41 would open
    res = shadow_data_inline(
        "--old", f"sqlite:{tmp_path / 'p%41.sqlite'}", "--new", f"sqlite:{tmp_path / 'x#y.sqlite'}",
        "--table", "t", "--key", "id", "--no-store",
    )  # fmt: skip
    assert res.code == 0, res.output
    assert "1 rows old, 1 new: agree" in res.stdout
