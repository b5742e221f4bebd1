"""Parsing of backend URLs given on the command line or as options."""

from __future__ import annotations

import math
import re
from decimal import Decimal
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


def positive_number(value: float, what: str, most: float = 86400.0) -> float:
    """`value` if it is a finite number above 0 and at most `most` (a day of seconds, by
    default: the longest wait any option means); ConfigError (one line) otherwise."""
    if not (math.isfinite(value) and 0 < value <= most):
        raise ConfigError(f"{what} {value}: expected a number above 0 and at most {most:g}")
    return value


_SIZE_UNITS = {
    **dict.fromkeys(("", "b"), 1),
    **dict.fromkeys(("k", "kib"), 1 << 10),
    **dict.fromkeys(("m", "mib"), 1 << 20),
    **dict.fromkeys(("g", "gib"), 1 << 30),
    **dict.fromkeys(("t", "tib"), 1 << 40),
    **{"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4},
}
_MAX_SIZE = 1 << 40
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(value: str, what: str) -> int:
    """'8MiB', '512M', '64k' or '1048576' -> bytes (1 byte to 1 TiB); ConfigError otherwise."""
    m = _SIZE_RE.fullmatch(value)
    unit = _SIZE_UNITS.get(m[2].lower()) if m else None
    size = int(Decimal(m[1]) * unit) if m and unit else 0
    if not 1 <= size <= _MAX_SIZE:
        raise ConfigError(
            f"{what} {value!r}: expected a size from 1 byte to 1 TiB, e.g. 8MiB, 512k or 65536"
        )
    return size
