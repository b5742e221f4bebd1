"""The `--metrics` address: parsed once, with one clear error."""

from __future__ import annotations

from shadow.errors import ConfigError


def parse_address(value: str, option: str = "--metrics") -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1) as (host, port); ConfigError if bad."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:9464)"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"{option} {value!r}: port {port} is not between 1 and 65535")
    if any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(f"{option} {value!r}: {host!r} is not a host name or address")
    return host, port
