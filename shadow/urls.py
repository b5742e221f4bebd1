"""Parsing of backend URLs and listen addresses given on the command line or as options."""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from decimal import Decimal
from urllib.parse import urlsplit

from shadow.errors import ConfigError, ListenError


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


_LISTEN_RE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]*)):(?P<port>\d+)")


def parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080', ':8080' or '8080' -> (host, port).

    The host defaults to 127.0.0.1; an IPv6 address goes in brackets.
    """
    text = value.strip()
    if text.isdigit():
        text = ":" + text
    m = _LISTEN_RE.fullmatch(text)
    bad = ConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    if m is None or not 0 < int(m["port"]) < 65536:
        raise bad
    host = m["v6"] or m["host"] or "127.0.0.1"
    if m["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    return host, int(m["port"])


def check_listen(host: str, port: int) -> None:
    """ListenError (exit 6) unless (host, port) can be bound now: busy port, unknown host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"--listen {host}:{port}: unknown host ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ListenError(
                f"--listen {host}:{port}: cannot listen there ({exc.strerror or exc})"
            ) from None
