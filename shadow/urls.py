"""Parsing of backend URLs given on the command line or as options."""

from __future__ import annotations

from urllib.parse import urlsplit

from shadow.errors import ConfigError


def parse_backend_url(value: str, what: str) -> str:
    """Validate `http(s)://host[:port][/prefix]` and return it without a trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: {value!r} is not an http(s)://host[:port] URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{what}: {value!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"{what}: {value!r} must not have a query or fragment")
    return value.strip().rstrip("/")
