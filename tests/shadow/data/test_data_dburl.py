"""shadow.data.dburl: the --old / --new database URLs, and how they are shown (no secrets)."""

from __future__ import annotations

import os

import pytest

from shadow.data.dburl import parse_database_url
from shadow.errors import ConfigError

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u@db.example:5432/app", "postgresql://u@db.example:5432/app"),
        (f"postgresql://u:{SECRET}@db.example:5432/app", "postgresql://u@db.example:5432/app"),
        (f"postgres://u:{SECRET}@db.example/app", "postgresql://u@db.example/app"),
        (f"POSTGRESQL://u:{SECRET}@DB.example/app", "postgresql://u@db.example/app"),
        ("postgresql://db.example/app", "postgresql://db.example/app"),
        (
            f"postgresql://u@db.example/app?sslmode=require&password={SECRET}",
            "postgresql://u@db.example/app",
        ),
        (f"postgresql://u:{SECRET}@[::1]:5433/app", "postgresql://u@[::1]:5433/app"),
        (f"postgresql://u:p%40{SECRET}%3A@h/app", "postgresql://u@h/app"),
        (f"postgresql://u:p@{SECRET}@h/app", "postgresql://u@h/app"),  # '@' left unquoted
        (f"  postgresql://u:{SECRET}@h/app  ", "postgresql://u@h/app"),
    ],
)
def test_postgres_url_is_shown_without_its_password(url: str, shown: str) -> None:
    parsed = parse_database_url(url, "--old")
    assert parsed.dialect == "postgresql"
    assert parsed.shown == shown
    assert SECRET not in parsed.shown
    assert parsed.raw.startswith("postgresql://")  # the driver gets it whole


def test_postgres_raw_keeps_the_password_for_the_driver() -> None:
    parsed = parse_database_url(f"postgres://u:{SECRET}@h:1/app", "--new")
    assert parsed.raw == f"postgresql://u:{SECRET}@h:1/app"


def test_postgres_url_with_host_in_the_query() -> None:
    parsed = parse_database_url(f"postgresql:///app?host=/run/pg&password={SECRET}", "--old")
    assert parsed.dialect == "postgresql"
    assert SECRET not in parsed.shown


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:legacy.sqlite", "legacy.sqlite"),
        ("sqlite:///abs/legacy.db", "/abs/legacy.db"),
        ("sqlite://rel/legacy.db", "rel/legacy.db"),
        ("SQLITE:data/x.sqlite3", "data/x.sqlite3"),
        ("legacy.db", "legacy.db"),
        ("dir/legacy.sqlite", "dir/legacy.sqlite"),
        ("/abs/legacy.SQLITE3", "/abs/legacy.SQLITE3"),
        ("sqlite:no-suffix", "no-suffix"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    parsed = parse_database_url(url, "--old")
    assert parsed.dialect == "sqlite"
    assert parsed.path == path
    assert parsed.shown == f"sqlite:{path}"


def test_sqlite_path_expands_the_home_directory() -> None:
    parsed = parse_database_url("sqlite:~/legacy.db", "--old")
    assert parsed.path == os.path.expanduser("~/legacy.db")
    assert not parsed.path.startswith("~")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "--old: empty database URL"),
        ("   ", "--old: empty database URL"),
        (f"postgresql://u:{SECRET}@h:99999/db", "--old: bad host or port"),
        (f"postgresql://u:{SECRET}@h:port/db", "--old: bad host or port"),
        (f"postgresql://u:{SECRET}@/db", "--old: postgresql:// URL without a host"),
        ("sqlite:", "--old: sqlite: URL without a file"),
        ("sqlite://", "--old: sqlite: URL without a file"),
        (f"mysql://u:{SECRET}@h/db", "--old: mysql databases are not supported yet"),
        (f"mssql://u:{SECRET}@h/db", "--old: mssql databases are not supported yet"),
        (f"http://u:{SECRET}@h/db", "--old: not a database URL"),
        (f"u:{SECRET}@h/db", "--old: not a database URL"),
        ("legacy.txt", "--old: not a database URL"),
        (f"ftp://h/{SECRET}.db", "--old: not a database URL"),
    ],
)
def test_bad_urls_are_named_without_their_secrets(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_database_url(url, "--old")
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert SECRET not in text


def test_the_option_is_named_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"^--new: "):
        parse_database_url("nonsense", "--new")
