"""Parsing of backend URLs given on the command line or as options."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from shadow.errors import ConfigError


def parse_backend_url(value: str, what: str) -> str:
    """Validate `http(s)://host[:port][/prefix]` and return it without a trailing slash."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"{what}: {value!r} is not an http(s)://host[:port] URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: {value!r} is not an http(s)://host[:port] URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{what}: {value!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"{what}: {value!r} must not have a query or fragment")
    return value.strip().rstrip("/")


def positive_number(value: float, what: str) -> float:
    """`value` if it is a finite number above 0; ConfigError (one line) otherwise."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{what} {value}: expected a finite number above 0")
    return value
