"""Database URLs of `shadow data diff`: which engine, where, and how to show them safely."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from shadow.errors import ConfigError

Dialect = Literal["postgresql", "sqlite"]
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: `postgresql://user:pw@host:port/db` or `sqlite:PATH`."""

    dialect: Dialect
    raw: str  # what the driver gets (with its password)
    path: str | None = None  # the SQLite file

    @property
    def shown(self) -> str:
        """The URL without its password or secret query parameters: safe to store and print."""
        if self.dialect == "sqlite":
            return f"sqlite:{self.path}"
        parts = urlsplit(self.raw)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_database_url(value: str, what: str) -> DatabaseUrl:
    """Parse `--old` / `--new`; ConfigError (one line, exit 2) names what is wrong."""
    text = value.strip()
    if not text:
        raise ConfigError(f"{what}: empty database URL (postgresql://... or sqlite:PATH)")
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme in ("postgresql", "postgres"):
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            # not echoed: it may hold a password
            raise ConfigError(f"{what}: bad host or port in the database URL") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"{what}: {scheme}:// URL without a host")
        return DatabaseUrl("postgresql", "postgresql" + text[len(scheme) :])
    if scheme == "sqlite":
        rest = text[len("sqlite:") :]
        # sqlite:///abs/file.db, sqlite://rel.db, sqlite:rel.db
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ConfigError(f"{what}: sqlite: URL without a file (sqlite:PATH)")
        return DatabaseUrl("sqlite", text, os.path.expanduser(path))
    if scheme in ("mysql", "mariadb", "mssql", "oracle", "snowflake"):
        raise ConfigError(
            f"{what}: {scheme} databases are not supported yet (postgresql://... or sqlite:PATH)"
        )
    if text.lower().endswith(_SQLITE_SUFFIXES) and "://" not in text:
        return DatabaseUrl("sqlite", f"sqlite:{text}", os.path.expanduser(text))
    raise ConfigError(
        # not echoed: an unknown form may hold a password
        f"{what}: not a database URL (postgresql://USER@HOST:PORT/DB or sqlite:PATH)"
    )


__all__ = ["DatabaseUrl", "Dialect", "parse_database_url"]
