"""`shadow data diff` refusing bad input: one line on stderr, the documented exit code
(2 config/usage, 3 store, 9 database), no traceback, nothing stored, no password shown."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.data_diff_helpers import (
    Result,
    dump_store,
    pg_exec,
    run_count,
    series,
    shadow_data,
    shadow_data_inline,
    sqlite_exec,
    store_rows,
)

pytestmark = pytest.mark.integration

PASSWORD = "Pw-" + uuid.uuid4().hex[:12]


def refused(res: Result, code: int, *needles: str) -> str:
    """The one line a refusal prints; asserts the exit code and that nothing else shows."""
    assert res.code == code, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("shadow: error: "), line
    for needle in needles:
        assert needle in line, line
    assert PASSWORD not in res.output
    assert "stored" not in res.stdout
    return line


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def old_sqlite(tmp_path: Path) -> Path:
    """sqlite `t`: id INTEGER PRIMARY KEY, v TEXT, n INTEGER, doc JSON; 100 rows."""
    path = tmp_path / "old.sqlite"
    sqlite_exec(
        path,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER, doc JSON)",
        series(100) + """INSERT INTO t SELECT v, 'v' || v, v, '{"a": 1}' FROM g""",
    )
    return path


NEW_T = (
    "CREATE TABLE t (id bigint PRIMARY KEY, v text, n integer, doc jsonb)",
    """INSERT INTO t SELECT g, 'v' || g, g, '{"a": 1}' FROM generate_series(1, 100) g""",
)
# tables whose types cannot be compared with old_sqlite's `t`
INCOMPATIBLE = {
    "k_text": "CREATE TABLE k_text (id text PRIMARY KEY, v text, n integer, doc jsonb)",
    "doc_int": "CREATE TABLE doc_int (id bigint PRIMARY KEY, v text, n integer, doc integer)",
    "n_json": "CREATE TABLE n_json (id bigint PRIMARY KEY, v text, n jsonb, doc jsonb)",
    "k_float": "CREATE TABLE k_float (id float8 PRIMARY KEY, v text, n integer, doc jsonb)",
}


@pytest.fixture
def new_pg(postgres_url: str) -> str:
    """PostgreSQL `t` holding the same 100 rows (a database of this test's own)."""
    pg_exec(postgres_url, *NEW_T)
    return postgres_url


@pytest.fixture(scope="module")
def shared_pg(postgres_server: Any) -> Iterator[str]:
    """One database for the tests that only read: `t` and the INCOMPATIBLE tables."""
    name = f"t_errors_{uuid.uuid4().hex[:8]}"
    url = str(postgres_server.create_database(name))
    pg_exec(url, *NEW_T, *INCOMPATIBLE.values())
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one data run (copied where a test needs an existing --db)."""
    folder = tmp_path_factory.mktemp("store")
    a, b = folder / "a.sqlite", folder / "b.sqlite"
    for path in (a, b):
        sqlite_exec(path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                    "INSERT INTO t VALUES (1, 'x')")  # fmt: skip
    db = folder / "template.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{a}", "--new", f"sqlite:{b}", "--table", "t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 0, res.output
    assert run_count(db) == 1
    return db


@pytest.fixture
def existing_store(template_store: Path, tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "existing.duckdb"
    shutil.copy(template_store, db)
    yield db
    assert run_count(db) == 1  # the refused run added nothing


@pytest.fixture
def pg_user(postgres_server: Any) -> str:
    """A role that must log in with PASSWORD (roles are the server's: a unique name)."""
    name = f"u_{uuid.uuid4().hex[:10]}"
    postgres_server.create_user(name, PASSWORD)
    return name


def with_user(url: str, user: str, password: str) -> str:
    rest = url.split("@", 1)[1]
    return f"postgresql://{user}:{password}@{rest}"


# --- the databases: unreachable, refused, missing (exit 9) -------------------------------------


def test_unreachable_database(tmp_path: Path, old_sqlite: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    url = f"postgresql://someone:{PASSWORD}@127.0.0.1:{closed_port()}/db"
    res = shadow_data(
        "--old", f"sqlite:{old_sqlite}", "--new", url, "--table", "t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    line = refused(res, 9, "new database postgresql://someone@127.0.0.1:")
    assert "refused" in line.lower() or "connect" in line.lower()
    assert not db.exists()


def test_wrong_password(tmp_path: Path, shared_pg: str, pg_user: str) -> None:
    new_pg = shared_pg
    db = tmp_path / "fresh.duckdb"
    wrong = with_user(new_pg, pg_user, PASSWORD + "-wrong")
    res = shadow_data(
        "--old", wrong, "--new", new_pg, "--table", "t", "--key", "id", "--db", str(db)
    )
    line = refused(res, 9, f"old database postgresql://{pg_user}@", "password authentication")
    assert PASSWORD + "-wrong" not in res.output
    assert "wrong" not in line.split("password authentication")[0]
    assert not db.exists()


def test_a_password_is_neither_shown_nor_stored(
    tmp_path: Path, old_sqlite: Path, new_pg: str, pg_user: str
) -> None:
    pg_exec(new_pg, f'GRANT SELECT ON t TO "{pg_user}"')
    pg_exec(new_pg, "UPDATE t SET v = 'changed' WHERE id = 5")
    url = with_user(new_pg, pg_user, PASSWORD)
    db = tmp_path / "x.duckdb"
    res = shadow_data(
        "--old", f"sqlite:{old_sqlite}", "--new", url, "--table", "t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    assert res.code == 1, res.output
    assert "$row[id=5].v" in res.stdout
    assert PASSWORD not in res.output
    assert PASSWORD not in dump_store(db)
    (candidate,) = store_rows(db, "SELECT candidate_url FROM runs")[0]
    assert candidate == with_user(new_pg, pg_user, "x").replace(":x@", "@")
    pg_exec(new_pg, f'REVOKE ALL ON t FROM "{pg_user}"')


def test_missing_table(tmp_path: Path, old_sqlite: Path, shared_pg: str) -> None:
    new_pg = shared_pg
    db = tmp_path / "fresh.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", new_pg, "--table", "t:nowhere", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    refused(res, 9, "new database", "nowhere")
    assert not db.exists()
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", new_pg, "--table", "gone:t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    refused(res, 9, "old database sqlite:", "gone")
    assert not db.exists()


def test_missing_sqlite_file(tmp_path: Path, shared_pg: str, existing_store: Path) -> None:
    new_pg = shared_pg
    res = shadow_data_inline(
        "--old", f"sqlite:{tmp_path / 'nope.sqlite'}", "--new", new_pg, "--table", "t",
        "--key", "id", "--db", str(existing_store),
    )  # fmt: skip
    refused(res, 9, "old database sqlite:", "no such file")
    assert not (tmp_path / "nope.sqlite").exists()  # not created by opening it


def test_a_file_that_is_no_sqlite_database(tmp_path: Path, shared_pg: str) -> None:
    new_pg = shared_pg
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database\n" * 100)
    res = shadow_data_inline(
        "--old", f"sqlite:{junk}", "--new", new_pg, "--table", "t", "--key", "id", "--no-store"
    )
    refused(res, 9, "old database sqlite:")


def test_nothing_is_stored_when_a_later_table_fails(tmp_path: Path, old_sqlite: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data.tables.t]\nkey = "id"\n\n[data.tables.u]\nkey = "id"\n')
    db = tmp_path / "fresh.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", f"sqlite:{old_sqlite}", "--config", str(config),
        "--db", str(db),
    )  # fmt: skip
    refused(res, 9, "no such table: u")
    assert not db.exists()


# --- what cannot be compared (exit 2) -----------------------------------------------------------


def test_missing_key_column(tmp_path: Path, old_sqlite: Path, new_pg: str) -> None:
    db = tmp_path / "fresh.duckdb"
    res = shadow_data(
        "--old", f"sqlite:{old_sqlite}", "--new", new_pg, "--table", "t", "--key", "uid",
        "--db", str(db),
    )  # fmt: skip
    refused(res, 2, "key column 'uid' is not in old t")
    assert not db.exists()
    pg_exec(new_pg, "ALTER TABLE t RENAME COLUMN id TO ident")
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", new_pg, "--table", "t", "--key", "id",
        "--db", str(db),
    )  # fmt: skip
    refused(res, 2, "key column 'id' is not in new t")
    assert not db.exists()


def test_a_key_that_is_not_unique(
    tmp_path: Path, new_pg: str, existing_store: Path, old_sqlite: Path
) -> None:
    pg_exec(
        new_pg,
        "CREATE TABLE d (id bigint, v text)",
        "INSERT INTO d SELECT g % 40, 'v' FROM generate_series(1, 200) g",  # 40 keys, 5 rows each
    )
    path = tmp_path / "d.sqlite"
    sqlite_exec(path, "CREATE TABLE d (id INTEGER, v TEXT)",
                series(40) + "INSERT INTO d SELECT v, 'v' FROM g")  # fmt: skip
    res = shadow_data_inline(
        "--old", f"sqlite:{path}", "--new", new_pg, "--table", "d", "--key", "id",
        "--max-duplicates", "10", "--db", str(existing_store),
    )  # fmt: skip
    refused(res, 2, "not unique in new d", "40 keys are held by more than one row")
    # within --max-duplicates they are reported (exit 1), not refused
    res = shadow_data_inline(
        "--old", f"sqlite:{path}", "--new", new_pg, "--table", "d", "--key", "id", "--no-store"
    )
    assert res.code == 1, res.output
    assert "40 duplicate keys" in res.stdout


@pytest.mark.parametrize(
    ("new_table", "needles"),
    [
        ("k_text", ("key 'id' is integer in old and text in new", "incompatible types")),
        ("doc_int", ("column 'doc' is json in old and integer in new", "cast.doc")),
        ("n_json", ("column 'n' is integer in old and json in new",)),
        ("k_float", ("key 'id' is integer in old and number in new",)),
    ],
)
def test_incompatible_types(
    tmp_path: Path, old_sqlite: Path, shared_pg: str, new_table: str, needles: tuple[str, ...]
) -> None:
    db = tmp_path / "fresh.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", shared_pg, "--table", f"t:{new_table}",
        "--key", "id", "--db", str(db),
    )  # fmt: skip
    refused(res, 2, *needles)
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--old", f"mysql://u:{PASSWORD}@h/db"], ("--old: mysql databases are not supported",)),
        (["--old", f"nonsense://u:{PASSWORD}@h/db"], ("--old: not a database URL",)),
        (["--old", f"postgresql://u:{PASSWORD}@h:99999/db"], ("--old: bad host or port",)),
        (["--old", "sqlite:"], ("--old: sqlite: URL without a file",)),
        (["--min-age", "60"], ("--since COLUMN and --min-age SECONDS go together",)),
        (["--since", "v"], ("--since COLUMN and --min-age SECONDS go together",)),
        (["--min-age", "-1", "--since", "v"], ("--min-age must be a number of seconds",)),
        (["--min-age", "nan", "--since", "v"], ("--min-age must be a number of seconds",)),
        (["--min-age", "1e12", "--since", "v"], ("--min-age must be a number of seconds",)),
        (["--key", "id,"], ("--key 'id,': empty column name",)),
        (["--table", "t:"], ("expected OLD or OLD:NEW",)),
        (["--max-duplicates", "-1"], ("--max-duplicates must be 0 or more",)),
        (["--timeout", "0"], ("--timeout must be a positive number",)),
        (["--since", "nosuch", "--min-age", "5"], ("--since column 'nosuch' must be in both",)),
        (["--since", "v", "--min-age", "5"], ("--since column 'v' is text in new",)),
        (["--config", "/nonexistent/shadow.toml"], ("config file /nonexistent/shadow.toml",)),
    ],
)
def test_usage_errors(
    old_sqlite: Path,
    shared_pg: str,
    existing_store: Path,
    args: list[str],
    needles: tuple[str, ...],
) -> None:
    base = {"--old": f"sqlite:{old_sqlite}", "--new": shared_pg, "--table": "t", "--key": "id"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [x for pair in base.items() for x in pair]
    res = shadow_data_inline(*argv, "--db", str(existing_store))
    refused(res, 2, *needles)


def test_bad_url_through_the_real_command(tmp_path: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    res = shadow_data(
        "--old", f"https://u:{PASSWORD}@h/db", "--new", "sqlite:x.db", "--table", "t",
        "--key", "id", "--db", str(db),
    )  # fmt: skip
    refused(res, 2, "--old: not a database URL")
    assert not db.exists()


def test_click_usage_errors_exit_2(old_sqlite: Path) -> None:
    for args in (
        ["--segments", "0"],
        ["--bisection-threshold", "0"],
        ["--max-rows", "0"],
        ["--segments", "many"],
    ):
        res = shadow_data_inline(
            "--old", f"sqlite:{old_sqlite}", "--new", f"sqlite:{old_sqlite}", "--table", "t",
            "--key", "id", "--no-store", *args,
        )  # fmt: skip
        assert res.code == 2, (args, res.output)
        assert "Traceback" not in res.output


# --- the store (exit 3) -------------------------------------------------------------------------


def test_store_in_a_missing_directory(tmp_path: Path, old_sqlite: Path) -> None:
    db = tmp_path / "no" / "such" / "dir.duckdb"
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", f"sqlite:{old_sqlite}", "--table", "t",
        "--key", "id", "--db", str(db),
    )  # fmt: skip
    refused(res, 3, "does not exist")
    assert not db.parent.exists()


def test_store_that_is_not_duckdb(tmp_path: Path, old_sqlite: Path) -> None:
    db = tmp_path / "store.duckdb"
    db.write_bytes(b"not a duckdb file\n" * 64)
    before = db.read_bytes()
    res = shadow_data_inline(
        "--old", f"sqlite:{old_sqlite}", "--new", f"sqlite:{old_sqlite}", "--table", "t",
        "--key", "id", "--db", str(db),
    )  # fmt: skip
    refused(res, 3)
    assert db.read_bytes() == before
