"""`shadow data diff` end to end: real PostgreSQL (tests/postgres_server.py) and SQLite files.

The examples' migration must show exactly its seeded slips; larger generated tables with
differences planted at random keys must show exactly those, the same with --no-bisect,
while reading only a small part of the rows; keys, transforms, rows in flight, the stored
run, and bad input (one line, the documented exit code, nothing stored) are held to the
documented behaviour.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from examples.data.build import SLIPS, build_legacy, migrate
from tests.conftest import ROOT
from tests.integration.data_diff_helpers import (
    Found,
    differences,
    figures,
    pg_exec,
    series,
    shadow_data,
    shadow_data_inline,
    sqlite_exec,
    store_rows,
)

pytestmark = pytest.mark.integration

EXAMPLE_CONFIG = str(ROOT / "examples" / "shadow.toml")


def key_of(row_key: str) -> int:
    """'id=38' -> 38."""
    return int(row_key.split("=", 1)[1])


# --- the examples' migration: exactly its three slips --------------------------------------------


def test_example_migration_shows_exactly_the_seeded_slips(
    tmp_path: Path, postgres_url: str
) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    migrate(legacy, postgres_url)
    expected = {(s.table, s.key, s.column, s.kind) for s in SLIPS}
    found_by_mode: dict[str, set[tuple[str, int, str | None, str]]] = {}
    rows_read: dict[str, int] = {}
    for mode, extra in (("bisect", []), ("no-bisect", ["--no-bisect"])):
        db = tmp_path / f"{mode}.duckdb"
        run = shadow_data if mode == "bisect" else shadow_data_inline  # the real command once
        res = run(
            "--old", f"sqlite:{legacy}", "--new", postgres_url,
            "--config", EXAMPLE_CONFIG, "--db", str(db), *extra,
        )  # fmt: skip
        assert res.code == 1, res.output
        assert "Traceback" not in res.output
        stored = differences(db)
        found_by_mode[mode] = {
            (table, key_of(key), column, kind)
            for table, rows in stored.items()
            for key, column, kind in rows
        }
        rows_read[mode] = sum(int(figures(db, t)["rows_read"]) for t in ("analyses", "insights"))
        # what was printed names each slip
        for s in SLIPS:
            path = f"$row[id={s.key}]" + (f".{s.column}" if s.column else "")
            assert f"{path}  {s.kind}" in res.stdout, res.stdout
    assert found_by_mode["bisect"] == expected
    assert found_by_mode["no-bisect"] == expected
    total = 2 * (40 + 12) - 1
    assert rows_read["no-bisect"] == total
    assert rows_read["bisect"] < rows_read["no-bisect"]
    assert rows_read["bisect"] <= 10  # only the segments holding a slip


def test_example_migration_without_slips_agrees(tmp_path: Path, postgres_url: str) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    migrate(legacy, postgres_url, slips=False)
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{legacy}", "--new", postgres_url, "--config", EXAMPLE_CONFIG,
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 0, res.output
    assert res.stderr == ""
    for table, rows in (("analyses", 40), ("insights", 12)):
        f = figures(db, table)
        assert (f["old_rows"], f["new_rows"], f["differing_rows"]) == (rows, rows, 0)
        # equal rows hash alike on SQLite and PostgreSQL: nothing had to be read
        assert f["rows_read"] == 0 and f["segments_read"] == 0
    assert differences(db) == {}


# --- larger generated tables, differences planted at random keys ---------------------------------

N_ROWS = 6_000  # three levels of bisection at 8 parts and 50 rows; CI's time is shared


@dataclass
class Side:
    """One database of a generated table: how to fill it and how to change one row."""

    engine: str  # "pg" | "sqlite"
    url: str
    path: Path | None = None
    executed: list[str] = field(default_factory=list)

    @property
    def arg(self) -> str:
        return self.url

    def run(self, *statements: str) -> None:
        if self.engine == "pg":
            pg_exec(self.url, *statements)
        else:
            assert self.path is not None
            sqlite_exec(self.path, *statements)


def make_items(side: Side, n: int, *, primary_key: bool = False) -> None:
    """`items`: id, name, amount (float), note (text, NULL every 5th row), created (time),
    doc (JSON); the same rows on either engine."""
    pk = " PRIMARY KEY" if primary_key else ""
    if side.engine == "pg":
        side.run(
            f"CREATE TABLE items (id bigint{pk}, name text, amount double precision, note text, "
            "created timestamptz, doc jsonb)",
            "INSERT INTO items SELECT g, 'item-' || g, g * 0.25, "
            "CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || (g % 11) END, "
            "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', "
            "jsonb_build_object('n', g, 'tag', 't' || (g % 7)) "
            f"FROM generate_series(1, {n}) g",
        )
    else:
        side.run(
            f"CREATE TABLE items (id INTEGER{pk}, name TEXT, amount REAL, note TEXT, "
            "created TIMESTAMP, doc JSON)",
            series(n) + "INSERT INTO items SELECT v, 'item-' || v, v * 0.25, "
            "CASE WHEN v % 5 = 0 THEN NULL ELSE 'n' || (v % 11) END, "
            "strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || v || ' seconds'), "
            "json_object('n', v, 'tag', 't' || (v % 7)) FROM g",
        )


def plant(old: Side, new: Side, n: int, seed: int) -> Found:
    """Differences at random keys; what the diff must find: (row key, column, kind)."""
    rnd = random.Random(seed)
    # keys whose note is set (id % 5 != 0), and one whose note is NULL
    changed, removed, added, to_null, dup, doc, amount, both = rnd.sample(
        [k for k in range(1, n + 1) if k % 5], 8
    )
    from_null = rnd.choice(range(5, n + 1, 5))
    new.run(
        f"UPDATE items SET name = 'renamed' WHERE id = {changed}",
        f"DELETE FROM items WHERE id = {removed}",
        f"UPDATE items SET note = NULL WHERE id = {to_null}",
        f"UPDATE items SET amount = amount + 0.5 WHERE id = {amount}",
        f"UPDATE items SET name = 'x', amount = -1 WHERE id = {both}",
        f"UPDATE items SET note = 'was null' WHERE id = {from_null}",
        f"INSERT INTO items SELECT * FROM items WHERE id = {dup}",
    )
    old.run(f"DELETE FROM items WHERE id = {added}")
    if new.engine == "pg":
        new.run(f"UPDATE items SET doc = jsonb_set(doc, '{{tag}}', '\"changed\"') WHERE id = {doc}")
    else:
        new.run(f"UPDATE items SET doc = json_set(doc, '$.tag', 'changed') WHERE id = {doc}")
    return {
        (f"id={changed}", "name", "value_changed"),
        (f"id={removed}", None, "removed"),
        (f"id={added}", None, "added"),
        (f"id={to_null}", "note", "type_changed"),
        (f"id={dup}", None, "duplicate"),
        (f"id={doc}", "doc", "value_changed"),
        (f"id={amount}", "amount", "value_changed"),
        (f"id={both}", "name", "value_changed"),
        (f"id={both}", "amount", "value_changed"),
        (f"id={from_null}", "note", "type_changed"),
    }


def _side(engine: str, tmp_path: Path, name: str, pg_url: Callable[[], str]) -> Side:
    if engine == "pg":
        return Side("pg", pg_url())
    path = tmp_path / f"{name}.sqlite"
    return Side("sqlite", f"sqlite:{path}", path)


@pytest.mark.parametrize(
    ("old_engine", "new_engine", "seed"),
    [("pg", "pg", 1), ("sqlite", "sqlite", 2), ("sqlite", "pg", 3)],
    ids=["pg-pg", "sqlite-sqlite", "sqlite-pg"],
)
def test_planted_differences_are_found_exactly(
    tmp_path: Path, postgres_server: Any, old_engine: str, new_engine: str, seed: int
) -> None:
    import uuid

    made: list[str] = []

    def pg_url() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return str(postgres_server.create_database(name))

    try:
        old = _side(old_engine, tmp_path, "old", pg_url)
        new = _side(new_engine, tmp_path, "new", pg_url)
        make_items(old, N_ROWS)
        make_items(new, N_ROWS)
        expected = plant(old, new, N_ROWS, seed)
        results: dict[str, Found] = {}
        read: dict[str, dict[str, Any]] = {}
        # --no-bisect reads every row, in parts of at most --bisection-threshold rows: a
        # larger threshold there only saves the per-part round trips
        for mode, threshold, extra in (("bisect", 50, []), ("no-bisect", 3000, ["--no-bisect"])):
            db = tmp_path / f"{mode}.duckdb"
            res = shadow_data_inline(
                "--old", old.arg, "--new", new.arg, "--table", "items", "--key", "id",
                "--bisection-threshold", str(threshold), "--segments", "8", "--db", str(db),
                *extra,
            )  # fmt: skip
            assert res.code == 1, res.output
            results[mode] = differences(db).get("items", set())
            read[mode] = figures(db, "items")
        assert results["bisect"] == expected
        assert results["no-bisect"] == expected
        b, nb = read["bisect"], read["no-bisect"]
        for f in (b, nb):
            # dup: 2 rows in new; added: not in old; removed: not in new
            assert (f["old_rows"], f["new_rows"]) == (N_ROWS - 1, N_ROWS + 1 - 1)
            assert (f["changed_rows"], f["missing_rows"], f["extra_rows"]) == (6, 1, 1)
            assert (f["duplicate_keys"], f["differing_rows"]) == (1, 9)
        # every row is read but the 3 of the duplicated key (counted, reported, not walked)
        assert nb["rows_read"] == 2 * N_ROWS - 1 - 3
        assert b["rows_read"] < 0.06 * nb["rows_read"], b
        assert b["segments_read"] <= 2 * len(expected)
        # every segment read holds at most about the threshold's rows
        assert b["rows_read_old"] <= b["segments_read"] * 50 * 2
    finally:
        for name in made:
            postgres_server.drop_database(name)


# --- text keys and composite keys: ranges agree although PostgreSQL would sort otherwise ---------

KEY_ALPHABET = [*"aAbBzZéÉeäßΩ日_-1", "😀"]


def text_keys(count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        found.add("".join(rnd.choice(KEY_ALPHABET) for _ in range(rnd.randint(1, 4))))
    return sorted(found)


def label(**key: Any) -> str:
    """The row key as stored and shown: code="x", n=5."""
    import orjson

    return ",".join(
        f"{k}={orjson.dumps(v).decode() if isinstance(v, str) else v}" for k, v in key.items()
    )


@pytest.mark.parametrize("old_engine", ["sqlite", "pg"])
def test_text_keys_in_a_collation_that_is_not_byte_order(
    tmp_path: Path, postgres_url: str, postgres_server: Any, old_engine: str
) -> None:
    keys = text_keys(1200, seed=7)
    rows = [(k, f"v{i}") for i, k in enumerate(keys)]
    # new: PostgreSQL, the key column in an ICU collation (case-insensitive-ish order)
    pg_exec(postgres_url, 'CREATE TABLE items (code text COLLATE "en-x-icu" PRIMARY KEY, v text)')
    from tests.integration.data_diff_helpers import pg_insert, sqlite_insert

    pg_insert(postgres_url, "INSERT INTO items VALUES ($1, $2)", rows)
    icu_order = [r[0] for r in postgres_server.sql(
        "SELECT code FROM items ORDER BY code", postgres_url.rsplit("/", 1)[1]
    )]  # fmt: skip
    assert icu_order != sorted(keys, key=lambda k: k.encode())  # the orders do differ
    if old_engine == "sqlite":
        path = tmp_path / "old.sqlite"
        sqlite_exec(path, "CREATE TABLE items (code TEXT PRIMARY KEY, v TEXT)")
        sqlite_insert(path, "INSERT INTO items VALUES (?, ?)", rows)
        old_url = f"sqlite:{path}"

        def old_run(sql: str) -> None:
            sqlite_exec(path, sql.replace("$1", "?"))
    else:
        name = "t_old_" + postgres_url.rsplit("/", 1)[1][2:]
        old_url = postgres_server.create_database(name)
        pg_exec(old_url, 'CREATE TABLE items (code text COLLATE "C" PRIMARY KEY, v text)')
        pg_insert(old_url, "INSERT INTO items VALUES ($1, $2)", rows)

        def old_run(sql: str) -> None:
            pg_exec(old_url, sql)

    rnd = random.Random(11)
    changed = rnd.sample(keys, 3)
    removed, added = rnd.sample([k for k in keys if k not in changed], 2)

    def quoted(k: str) -> str:
        return "'" + k.replace("'", "''") + "'"

    pg_exec(
        postgres_url,
        *[f"UPDATE items SET v = 'changed' WHERE code = {quoted(k)}" for k in changed],
        f"DELETE FROM items WHERE code = {quoted(removed)}",
    )
    old_run(f"DELETE FROM items WHERE code = {quoted(added)}")
    expected: Found = {(label(code=k), "v", "value_changed") for k in changed}
    expected |= {(label(code=removed), None, "removed"), (label(code=added), None, "added")}
    try:
        for extra in ([], ["--no-bisect"]):
            db = tmp_path / f"x{len(extra)}.duckdb"
            threshold = "500" if extra else "20"  # --no-bisect reads all: fewer round trips
            res = shadow_data_inline(
                "--old", old_url, "--new", postgres_url, "--table", "items", "--key", "code",
                "--bisection-threshold", threshold, "--segments", "4", "--db", str(db), *extra,
            )  # fmt: skip
            assert res.code == 1, res.output
            assert differences(db)["items"] == expected
            f = figures(db, "items")
            assert (f["old_rows"], f["new_rows"]) == (len(keys) - 1, len(keys) - 1)
            if not extra:
                assert f["rows_read"] < 0.1 * 2 * len(keys), f
    finally:
        if old_engine == "pg":
            postgres_server.drop_database(name)


def test_composite_keys(tmp_path: Path, postgres_url: str) -> None:
    from tests.integration.data_diff_helpers import pg_insert, sqlite_insert

    regions = ["north", "North", "NORTH", "Åland", "zulu", "Zulu", "é", "日本", "a b", "a,b"]
    rows = [(r, n, n * 1.5, f"{r}-{n}") for r in regions for n in range(-50, 250)]
    path = tmp_path / "old.sqlite"
    sqlite_exec(path, "CREATE TABLE t (region TEXT, n INTEGER, x REAL, s TEXT, "
                      "PRIMARY KEY (region, n))")  # fmt: skip
    sqlite_insert(path, "INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    pg_exec(postgres_url, 'CREATE TABLE t (region text COLLATE "en-x-icu", n int, '
                          "x float8, s text, PRIMARY KEY (region, n))")  # fmt: skip
    pg_insert(postgres_url, "INSERT INTO t VALUES ($1, $2, $3, $4)", rows)
    pg_exec(
        postgres_url,
        "UPDATE t SET x = 0 WHERE region = 'North' AND n = 7",
        "UPDATE t SET s = 'other' WHERE region = '日本' AND n = -3",
        "DELETE FROM t WHERE region = 'a,b' AND n = 249",
        "INSERT INTO t VALUES ('north', 250, 1, 'new')",
    )
    expected = {
        (label(region="North", n=7), "x", "value_changed"),
        (label(region="日本", n=-3), "s", "value_changed"),
        (label(region="a,b", n=249), None, "removed"),
        (label(region="north", n=250), None, "added"),
    }
    for extra in ([], ["--no-bisect"]):
        db = tmp_path / f"x{len(extra)}.duckdb"
        res = shadow_data_inline(
            "--old", f"sqlite:{path}", "--new", postgres_url, "--table", "t",
            "--key", "region, n", "--bisection-threshold", "500" if extra else "25",
            "--segments", "4",
            "--db", str(db), *extra,
        )  # fmt: skip
        assert res.code == 1, res.output
        assert differences(db)["t"] == expected
        f = figures(db, "t")
        assert f["key_columns"] == '["region","n"]'
        if not extra:
            assert f["rows_read"] < 0.1 * 2 * len(rows), f


# --- transforms: rename, cast, ignore, computed columns, comparator rules -------------------------

TRANSFORMS = """
[data.tables.people]
old = "people"
new = "persons"
key = ["id"]
rename = { legacy_name = "name" }
ignore = ["note", "first_name", "last_name", "cents"]
cast = { qty = "number", active = "boolean" }
old_sql = { full_name = "first_name || ' ' || last_name" }
new_sql = { price = "cents / 100.0" }
compare = { tolerance = 0.01, masks = ["uuid"] }
"""


def make_people(old: Path, new_url: str, count: int) -> None:
    import json
    import uuid

    from tests.integration.data_diff_helpers import pg_insert, sqlite_insert

    sqlite_exec(
        old,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, legacy_name TEXT, first_name TEXT, "
        "last_name TEXT, meta TEXT, at TEXT, active INTEGER, price REAL, qty TEXT, ref TEXT, "
        "note TEXT)",
    )
    pg_exec(
        new_url,
        "CREATE TABLE persons (id bigint PRIMARY KEY, name text, full_name text, meta jsonb, "
        "at timestamptz, active boolean, cents integer, qty text, ref text, note text)",
    )
    old_rows, new_rows = [], []
    for i in range(1, count + 1):
        meta = {"b": i, "a": [1, 2.5, "x"], "c": {"y": 'é"\\', "x": None}}
        old_rows.append((
            i, f"name {i}", f"First{i}", f"Last{i}",
            json.dumps(meta, separators=(",", ":")),  # the legacy app's key order
            f"2024-05-01 {i % 24:02d}:{i % 60:02d}:00", i % 2, i + 0.004, str(i % 9),
            str(uuid.uuid4()), f"legacy note {i}",
        ))  # fmt: skip
        new_rows.append((
            i, f"name {i}", f"First{i} Last{i}", json.dumps(meta, indent=2, sort_keys=True),
            f"2024-05-01T{i % 24:02d}:{i % 60:02d}:00+00:00", bool(i % 2), i * 100,
            f"{i % 9}.0", str(uuid.uuid4()), f"migrated note {i}",
        ))  # fmt: skip
    sqlite_insert(old, f"INSERT INTO people VALUES ({', '.join('?' * 11)})", old_rows)
    pg_insert(
        new_url,
        "INSERT INTO persons VALUES ($1, $2, $3, $4::text::jsonb, $5::text::timestamptz, $6, "
        "$7, $8, $9, $10)",
        new_rows,
    )


def test_transforms_make_a_faithful_copy_agree(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "old.sqlite"
    make_people(old, postgres_url, 120)
    config = tmp_path / "shadow.toml"
    config.write_text(TRANSFORMS)
    base = ["--old", f"sqlite:{old}", "--new", postgres_url, "--config", str(config)]
    for extra in ([], ["--no-bisect"]):
        res = shadow_data_inline(*base, "--no-store", *extra)
        assert res.code == 0, res.output
        assert "120 rows old, 120 new: agree" in res.stdout
        assert "not compared" not in res.stdout  # every column is compared or ignored
    # the transforms do not hide real differences
    pg_exec(
        postgres_url,
        "UPDATE persons SET cents = cents + 5 WHERE id = 7",  # 0.05 > the tolerance
        "UPDATE persons SET meta = jsonb_set(meta, '{a,1}', '3.5') WHERE id = 8",
        "UPDATE persons SET active = NOT active WHERE id = 9",
        "UPDATE persons SET full_name = 'First10 L.' WHERE id = 10",
        "UPDATE persons SET at = at + interval '1 hour' WHERE id = 11",
        "UPDATE persons SET qty = '5.5' WHERE id = 12",
        "UPDATE persons SET name = 'renamed' WHERE id = 13",
        "UPDATE persons SET ref = 'not-a-uuid' WHERE id = 14",
        "UPDATE persons SET note = 'ignored', cents = cents + 1 WHERE id = 15",  # within 0.01
    )
    expected = {
        ("id=7", "price", "value_changed"),
        ("id=8", "meta", "value_changed"),
        ("id=9", "active", "value_changed"),
        ("id=10", "full_name", "value_changed"),
        ("id=11", "at", "value_changed"),
        ("id=12", "qty", "value_changed"),
        ("id=13", "name", "value_changed"),
        ("id=14", "ref", "value_changed"),
    }
    for extra in ([], ["--no-bisect"]):
        db = tmp_path / f"x{len(extra)}.duckdb"
        res = shadow_data_inline(*base, "--db", str(db), *extra)
        assert res.code == 1, res.output
        assert differences(db)["people"] == expected
        paths = {r[0] for r in store_rows(db, "SELECT path FROM data_differences")}
        assert "$row[id=8].meta.a[1]" in paths


def test_cast_reads_text_as_json_time_and_boolean(tmp_path: Path, postgres_url: str) -> None:
    """The legacy formats the brief names: JSON text (other key order), a naive text time,
    0/1 for a boolean, each compared as what the new column holds."""
    old = tmp_path / "old.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT, at TEXT, flag INTEGER, n TEXT)",
        """INSERT INTO t VALUES (1, '{"z": 1, "a": {"y": [true, null], "b": "q\\"x"}}', """
        "'2024-05-01 12:00:00', 1, '42')",
        "INSERT INTO t VALUES (2, '[]', '2024-05-01T14:00:00+02:00', 0, '-7')",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE t (id int PRIMARY KEY, doc jsonb, at timestamptz, flag boolean, n int)",
        """INSERT INTO t VALUES (1, '{"a": {"b": "q\\"x", "y": [true, null]}, "z": 1}', """
        "'2024-05-01 12:00:00+00', true, 42), (2, '[]', '2024-05-01 12:00:00Z', false, -7)",
    )
    config = tmp_path / "c.toml"
    config.write_text(
        '[data.tables.t]\nkey = "id"\ncast = { doc = "json", at = "timestamp", flag = "boolean" }\n'
    )
    for args in (
        ["--config", str(config)],  # cast
        ["--table", "t", "--key", "id"],  # the new side's types alone
    ):
        res = shadow_data_inline(
            "--old", f"sqlite:{old}", "--new", postgres_url, "--no-store", *args
        )
        assert res.code == 0, res.output
        assert "read 0 of 4 rows" in res.stdout  # equal checksums: nothing read


# --- rows in flight: --since COLUMN --min-age SECONDS --------------------------------------------


@pytest.mark.parametrize(
    "old_engine",
    [
        "pg",
        "sqlite-epoch",
        # was: the cutoff written '%H:%M:%f' (no seconds), julianday() NULL, nothing in flight
        "sqlite-text",
    ],
)
def test_rows_changed_recently_are_in_flight(
    tmp_path: Path, postgres_url: str, postgres_server: Any, old_engine: str
) -> None:
    create = "CREATE TABLE orders (id bigint PRIMARY KEY, v text, updated_at timestamptz)"
    fill = (
        "INSERT INTO orders SELECT g, 'v' || g, timestamptz '2024-01-01 00:00:00+00' "
        "FROM generate_series(1, 300) g"
    )
    pg_exec(postgres_url, create, fill)
    name = ""
    if old_engine == "pg":
        name = "t_since_" + postgres_url.rsplit("/", 1)[1][2:]
        old_url = postgres_server.create_database(name)
        pg_exec(
            old_url, create, fill,
            "UPDATE orders SET v = 'old side now', updated_at = now() WHERE id = 30",
        )  # fmt: skip
    else:
        path = tmp_path / "old.sqlite"
        old_url = f"sqlite:{path}"
        text = old_engine == "sqlite-text"
        sqlite_exec(
            path,
            f"CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT, "
            f"updated_at {'TEXT' if text else 'INTEGER'})",
            series(300)
            + "INSERT INTO orders SELECT v, 'v' || v, "
            + ("'2024-01-01 00:00:00'" if text else "1704067200")
            + " FROM g",
            "UPDATE orders SET v = 'old side now', updated_at = "
            + ("strftime('%Y-%m-%d %H:%M:%f', 'now')" if text else "unixepoch('now')")
            + " WHERE id = 30",
        )
    pg_exec(
        postgres_url,
        "UPDATE orders SET v = 'changed long ago' WHERE id = 10",
        "UPDATE orders SET v = 'changed now', updated_at = now() WHERE id = 20",
        "INSERT INTO orders VALUES (301, 'inserted now', now())",
        "DELETE FROM orders WHERE id = 40",
    )
    try:
        for extra in ([], ["--no-bisect"]):
            db = tmp_path / f"x{len(extra)}.duckdb"
            res = shadow_data_inline(
                "--old", old_url, "--new", postgres_url, "--table", "orders", "--key", "id",
                "--since", "updated_at", "--min-age", "600", "--segments", "4",
                "--bisection-threshold", "20", "--db", str(db), *extra,
            )  # fmt: skip
            assert res.code == 1, res.output
            assert differences(db)["orders"] == {
                ("id=10", "v", "value_changed"),
                ("id=40", None, "removed"),
            }
            f = figures(db, "orders")
            assert (f["old_rows"], f["new_rows"]) == (299, 298)  # settled rows only
            assert f["since_column"] == "updated_at" and f["cutoff"] is not None
            # counted in each database, whichever parts were read
            assert f["in_flight"] == 3, f  # rows in flight: 30 (old), 20 and 301 (new)
            assert f"{f['in_flight']} rows in flight skipped" in res.stdout
        # without --since every change shows
        res = shadow_data_inline(
            "--old", old_url, "--new", postgres_url, "--table", "orders", "--key", "id",
            "--no-store",
        )  # fmt: skip
        assert res.code == 1
        assert "5 differ" in res.stdout
    finally:
        if name:
            postgres_server.drop_database(name)


# --- the stored run: source data:<table>, the facts the command printed --------------------------

SUMMARY = re.compile(
    r"^(?P<table>\w+) \((?P<old>\w+) -> (?P<new>\w+), key (?P<key>[\w, ]+)\): "
    r"(?P<old_rows>\d+) rows old, (?P<new_rows>\d+) new: (?P<verdict>agree|\d+ differ) "
    r"\((?P<changed>\d+) changed, (?P<missing>\d+) only in old, (?P<extra>\d+) only in new, "
    r"(?P<dups>\d+) duplicate keys\)$"
)
READ = re.compile(r"^  read (?P<read>\d+) of (?P<total>\d+) rows, (?P<seg_read>\d+) of "
                  r"(?P<seg_checked>\d+) segments; ")  # fmt: skip


def test_the_stored_run_holds_what_was_printed(tmp_path: Path, postgres_url: str) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    migrate(legacy, postgres_url)
    db = tmp_path / "store.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{legacy}", "--new", postgres_url, "--config", EXAMPLE_CONFIG,
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    assert f"stored 2 run(s) in {db}" in res.stdout
    lines = res.stdout.splitlines()
    printed = {}
    for i, line in enumerate(lines):
        m = SUMMARY.match(line)
        if m:
            r = READ.match(lines[i + 1])
            assert r, lines[i + 1]
            printed[m["table"]] = {**m.groupdict(), **r.groupdict()}
    assert set(printed) == {"analyses", "insights"}
    runs = store_rows(db, "SELECT run_id, source, primary_url, candidate_url, options FROM runs")
    assert sorted(r[1] for r in runs) == ["data:analyses", "data:insights"]
    for run_id, source, primary, candidate, options in runs:
        table = source.removeprefix("data:")
        assert primary == f"sqlite:{legacy}"
        assert candidate == postgres_url  # no password to hide here
        assert f'"table": "{table}"' in options or '"table":"' + table in options
        p = printed[table]
        f = figures(db, table)
        assert f["run_id"] == run_id
        assert (f["old_table"], f["new_table"], f["key_columns"]) == (table, table, '["id"]')
        assert f["old_rows"] == int(p["old_rows"]) and f["new_rows"] == int(p["new_rows"])
        assert f["changed_rows"] == int(p["changed"])
        assert f["missing_rows"] == int(p["missing"])
        assert f["extra_rows"] == int(p["extra"])
        assert f["duplicate_keys"] == int(p["dups"])
        assert f["rows_read"] == int(p["read"])
        assert f["segments_read"] == int(p["seg_read"])
        assert f["segments_checked"] == int(p["seg_checked"])
        assert f["bisect"] is True and f["segments"] == 32 and f["threshold"] == 16384
    assert figures(db, "analyses")["differing_rows"] == 2
    assert figures(db, "insights")["differing_rows"] == 1
    by_table = dict(
        store_rows(db, "SELECT table_name, differing_rows FROM shadow_data_tables(NULL)")
    )
    assert by_table == {"analyses": 2, "insights": 1}
    columns = store_rows(db, "SELECT column_name, changed_rows FROM shadow_data_columns(NULL) "
                             "WHERE table_name = 'analyses' ORDER BY 1")  # fmt: skip
    assert columns == [("created_at", 1), ("name", 1)]
    values = dict(
        ((r[0], r[1]), (r[2], r[3]))
        for r in store_rows(
            db, "SELECT table_name, path, old_value, new_value FROM shadow_data_differences(NULL)"
        )
    )
    slip_name = next(s for s in SLIPS if s.column == "name")
    old_value, new_value = values[("analyses", f"$row[id={slip_name.key}].name")]
    assert len(json.loads(new_value)) == 40 and json.loads(old_value).startswith(
        json.loads(new_value)
    )
    removed = next(s for s in SLIPS if s.kind == "removed")
    old_row, new_row = values[("insights", f"$row[id={removed.key}]")]
    assert new_row is None and json.loads(old_row)["analysis_id"] > 0
    # a second run of the same tables is the latest one the macros show
    res2 = shadow_data_inline(
        "--old", f"sqlite:{legacy}", "--new", postgres_url, "--config", EXAMPLE_CONFIG,
        "--db", str(db), "--table", "insights",
    )  # fmt: skip
    assert res2.code == 1
    assert len(store_rows(db, "SELECT * FROM runs")) == 3
    latest = store_rows(db, "SELECT run_id FROM shadow_data_tables(NULL) "
                            "WHERE table_name = 'insights'")[0][0]  # fmt: skip
    assert latest not in {r[0] for r in runs}


# --- secrets --------------------------------------------------------------------------------------

SECRETS = ("hunter2-old-pass", "hunter3-new-pass", "tok-OLD-9f8e7d", "tok-NEW-1a2b3c",
           "gone-row-password", "nested-old-secret", "nested-new-secret")  # fmt: skip


def test_secret_columns_are_redacted_in_output_and_store(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "old.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT, password TEXT, api_token TEXT)",
        series(50) + "INSERT INTO accounts SELECT v, 'u' || v || '@x.test', 'pw' || v, "
        "'tk' || v FROM g",
        f"UPDATE accounts SET password = '{SECRETS[0]}' WHERE id = 3",
        f"UPDATE accounts SET api_token = '{SECRETS[2]}' WHERE id = 4",
        f"UPDATE accounts SET password = '{SECRETS[4]}' WHERE id = 5",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE accounts (id int PRIMARY KEY, email text, password text, api_token text)",
        "INSERT INTO accounts SELECT g, 'u' || g || '@x.test', 'pw' || g, 'tk' || g "
        "FROM generate_series(1, 50) g",
        f"UPDATE accounts SET password = '{SECRETS[1]}' WHERE id = 3",
        f"UPDATE accounts SET api_token = '{SECRETS[3]}' WHERE id = 4",
        "DELETE FROM accounts WHERE id = 5",
        "UPDATE accounts SET email = 'changed@x.test' WHERE id = 6",
    )
    db = tmp_path / "x.duckdb"
    res = shadow_data(
        "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "accounts", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    assert "$row[id=3].password" in res.stdout and "$row[id=4].api_token" in res.stdout
    assert "changed@x.test" in res.stdout  # an ordinary column is shown
    stored = json.dumps(store_rows(db, "SELECT * FROM data_differences"), default=str)
    for secret in SECRETS[:5]:
        assert secret not in res.output, secret
        assert secret not in stored, secret
    assert "REDACTED" in stored
    assert differences(db)["accounts"] == {
        ("id=3", "password", "value_changed"),
        ("id=4", "api_token", "value_changed"),
        ("id=5", None, "removed"),
        ("id=6", "email", "value_changed"),
    }


def test_secrets_inside_json_columns_are_redacted(tmp_path: Path, postgres_url: str) -> None:
    old = tmp_path / "old.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE s (id INTEGER PRIMARY KEY, settings JSON)",
        f"""INSERT INTO s VALUES (1, '{{"theme": "dark", "token": "{SECRETS[5]}"}}')""",
    )
    pg_exec(
        postgres_url,
        "CREATE TABLE s (id int PRIMARY KEY, settings jsonb)",
        f"""INSERT INTO s VALUES (1, '{{"theme": "dark", "token": "{SECRETS[6]}"}}')""",
    )
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "s", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    stored = json.dumps(store_rows(db, "SELECT * FROM data_differences"), default=str)
    for secret in SECRETS[5:]:
        assert secret not in res.output
        assert secret not in stored


# --- bounded reads: no segment holds more than the threshold's rows ------------------------------


def test_no_segment_read_holds_more_rows_than_the_threshold(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shadow.data.rows import SegmentComparer

    sizes: list[tuple[int, int]] = []
    original = SegmentComparer.pairs

    def pairs(self: SegmentComparer, old: Any, new: Any) -> Any:
        sizes.append((len(old), len(new)))
        return original(self, old, new)

    monkeypatch.setattr(SegmentComparer, "pairs", pairs)
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    for path in (old, new):
        sqlite_exec(
            path,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
            # uneven keys: dense runs and wide gaps
            series(6000) + "INSERT INTO t SELECT v * v % 1000003, 'x' || v FROM g WHERE true "
            "ON CONFLICT DO NOTHING",
        )
    rnd = random.Random(5)
    changed = rnd.sample(range(1, 6000), 40)
    sqlite_exec(new, *[f"UPDATE t SET v = 'changed' WHERE id = {c * c % 1000003}" for c in changed])
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--table", "t", "--key", "id",
        "--bisection-threshold", "50", "--segments", "4", "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    f = figures(db, "t")
    assert f["changed_rows"] == 40
    assert sizes and len(sizes) == f["segments_read"]
    assert max(max(s) for s in sizes) <= 50, sizes
    assert f["rows_read_old"] <= 50 * f["segments_read"]
    assert f["rows_read_new"] <= 50 * f["segments_read"]


# --- edges: limits, odd names, empty tables, extreme keys and settings ---------------------------


def two_sqlite(tmp_path: Path, create: str, *fill: str) -> tuple[Path, Path]:
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    for path in (old, new):
        sqlite_exec(path, create, *fill)
    return old, new


def test_max_rows_caps_what_is_stored_not_what_is_counted(tmp_path: Path) -> None:
    old, new = two_sqlite(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                          series(200) + "INSERT INTO t SELECT v, 'x' FROM g")  # fmt: skip
    sqlite_exec(new, "UPDATE t SET v = 'y' WHERE id % 10 = 0", "DELETE FROM t WHERE id = 7")
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--table", "t", "--key", "id",
        "--max-rows", "5", "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    assert "16 more differing rows counted, not stored (--max-rows)" in res.stdout
    f = figures(db, "t")
    assert (f["changed_rows"], f["missing_rows"], f["differing_rows"]) == (20, 1, 21)
    assert f["rows_dropped"] == 16
    assert len(differences(db)["t"]) == 5
    # every changed row is counted per column, stored or not
    assert store_rows(db, "SELECT column_name, changed_rows FROM shadow_data_columns(NULL)") == [
        ("v", 20)
    ]


def test_long_values_are_capped_in_the_store(tmp_path: Path) -> None:
    old, new = two_sqlite(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                          "INSERT INTO t VALUES (1, printf('%.10000c', 'a'))")  # fmt: skip
    sqlite_exec(new, "UPDATE t SET v = v || 'b'")
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--table", "t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    ((old_value, new_value),) = store_rows(db, "SELECT old_value, new_value FROM data_differences")
    assert len(old_value) < 4200 and json.loads(old_value).endswith("(10002 characters)")
    assert json.loads(new_value).endswith("(10003 characters)")


def test_renamed_table_chosen_columns_and_columns_on_one_side(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    new = tmp_path / "new.sqlite"
    sqlite_exec(
        old,
        'CREATE TABLE "Legacy Items" (id INTEGER PRIMARY KEY, "the name" TEXT, "select" TEXT, '
        "gone TEXT)",
        "INSERT INTO \"Legacy Items\" VALUES (1, 'a', 's', 'g'), (2, 'b', 's', 'g')",
    )
    sqlite_exec(new, 'CREATE TABLE items (id INTEGER PRIMARY KEY, "the name" TEXT, '
                     '"select" TEXT, added TEXT)',
                "INSERT INTO items VALUES (1, 'a', 's', 'n'), (2, 'B', 'S', 'n')")  # fmt: skip
    args = ["--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--no-store"]
    res = shadow_data_inline(*args, "--table", "Legacy Items:items", "--key", "id")
    assert res.code == 1, res.output
    assert '$row[id=2]["the name"]' in res.stdout or "$row[id=2].the name" in res.stdout
    assert "$row[id=2].select" in res.stdout
    assert "not compared, only in old: gone" in res.stdout
    assert "not compared, only in new: added" in res.stdout
    config = tmp_path / "c.toml"
    config.write_text(
        '[data.tables.items]\nold = "Legacy Items"\nnew = "items"\nkey = "id"\n'
        'columns = ["the name"]\n'
    )
    db = tmp_path / "x.duckdb"
    res = shadow_data_inline(*args[:-1], "--db", str(db), "--config", str(config))
    assert res.code == 1, res.output
    # only the chosen column is compared
    assert differences(db)["items"] == {("id=2", "the name", "value_changed")}


@pytest.mark.parametrize("empty", ["both", "new"])
def test_empty_tables(tmp_path: Path, postgres_url: str, empty: str) -> None:
    old = tmp_path / "old.sqlite"
    sqlite_exec(old, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    if empty == "new":
        sqlite_exec(old, series(30) + "INSERT INTO t SELECT v, 'x' FROM g")
    pg_exec(postgres_url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)")
    for extra in ([], ["--no-bisect"]):
        res = shadow_data_inline(
            "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "id",
            "--no-store", *extra,
        )  # fmt: skip
        if empty == "both":
            assert res.code == 0, res.output
            assert "0 rows old, 0 new: agree" in res.stdout
        else:
            assert res.code == 1, res.output
            assert "30 rows old, 0 new: 30 differ (0 changed, 30 only in old" in res.stdout


def test_extreme_integer_keys_and_null_versus_empty_text(tmp_path: Path, postgres_url: str) -> None:
    from tests.integration.data_diff_helpers import pg_insert, sqlite_insert

    keys = [-(2**63), -(2**62), -1, 0, 1, 2, 2**31, 2**53 + 1, 2**62, 2**63 - 2, 2**63 - 1]
    rows = [(k, None if i % 2 else "") for i, k in enumerate(keys)]
    old = tmp_path / "old.sqlite"
    sqlite_exec(old, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    sqlite_insert(old, "INSERT INTO t VALUES (?, ?)", rows)
    pg_exec(postgres_url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)")
    flipped = {2**63 - 1: "x", -(2**63): None, 2**53 + 1: ""}
    pg_insert(postgres_url, "INSERT INTO t VALUES ($1, $2)",
              [(k, flipped.get(k, v)) for k, v in rows])  # fmt: skip
    expected = {
        (f"id={2**63 - 1}", "v", "value_changed"),  # "" -> "x"
        (f"id={-(2**63)}", "v", "type_changed"),  # "" -> NULL
        (f"id={2**53 + 1}", "v", "type_changed"),  # NULL -> ""
    }
    for extra in ([], ["--no-bisect"]):
        db = tmp_path / f"x{len(extra)}.duckdb"
        res = shadow_data_inline(
            "--old", f"sqlite:{old}", "--new", postgres_url, "--table", "t", "--key", "id",
            "--segments", "3", "--bisection-threshold", "1", "--db", str(db), *extra,
        )  # fmt: skip
        assert res.code == 1, res.output
        assert differences(db)["t"] == expected


@pytest.mark.parametrize(("segments", "threshold"), [(2, 1), (500, 1)])
def test_extreme_segment_settings_agree(tmp_path: Path, segments: int, threshold: int) -> None:
    old, new = two_sqlite(
        tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",
        series(400) + "INSERT INTO t SELECT v * 7, char(65 + v % 26) || v, 'x' FROM g",
    )  # fmt: skip

    def k(i: int) -> str:
        v = i // 7
        return f'k="{chr(65 + v % 26)}{v}"'

    sqlite_exec(new, "UPDATE t SET v = 'y' WHERE id IN (7, 2100, 2800)",
                "DELETE FROM t WHERE id = 70", "INSERT INTO t VALUES (5, 'new', 'x')")  # fmt: skip
    for key, labels in (
        ("id", {"id=7", "id=2100", "id=2800", "id=70", "id=5"}),
        ("k", {k(7), k(2100), k(2800), k(70), 'k="new"'}),
    ):
        db = tmp_path / f"{key}.duckdb"
        res = shadow_data_inline(
            "--old", f"sqlite:{old}", "--new", f"sqlite:{new}", "--table", "t", "--key", key,
            "--segments", str(segments), "--bisection-threshold", str(threshold),
            "--db", str(db),
        )  # fmt: skip
        assert res.code == 1, res.output
        assert {k for k, _, _ in differences(db)["t"]} == labels


def test_schema_qualified_mixed_case_table_renamed_key_and_since(
    tmp_path: Path, postgres_url: str
) -> None:
    pg_exec(
        postgres_url,
        "CREATE SCHEMA app",
        'CREATE TABLE app."Items" (uid bigint PRIMARY KEY, "Name" text, stamp timestamptz)',
        "INSERT INTO app.\"Items\" SELECT g, 'n' || g, timestamptz '2024-01-01 00:00:00+00' "
        "FROM generate_series(1, 100) g",
        'UPDATE app."Items" SET "Name" = \'changed\' WHERE uid = 9',
        'UPDATE app."Items" SET "Name" = \'in flight\', stamp = now() WHERE uid = 10',
    )
    old = tmp_path / "old.sqlite"
    sqlite_exec(
        old,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, ts TIMESTAMP)",
        series(100) + "INSERT INTO items SELECT v, 'n' || v, '2024-01-01 00:00:00' FROM g",
    )
    config = tmp_path / "c.toml"
    config.write_text(
        '[data.tables.items]\nnew = "app.Items"\nkey = ["id"]\n'
        'rename = { id = "uid", name = "Name", ts = "stamp" }\nsince = "ts"\nmin_age = 60\n'
    )
    for extra in ([], ["--no-bisect"]):
        db = tmp_path / f"x{len(extra)}.duckdb"
        res = shadow_data_inline(
            "--old", f"sqlite:{old}", "--new", postgres_url, "--config", str(config),
            "--db", str(db), *extra,
        )  # fmt: skip
        assert res.code == 1, res.output
        assert "items (items -> app.Items, key uid)" in res.stdout
        assert differences(db)["items"] == {("uid=9", "Name", "value_changed")}
        assert figures(db, "items")["in_flight"] == 1
