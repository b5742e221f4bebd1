"""A copyable `curl` command that repeats a stored request against one backend.

Everything taken from the store is shell-quoted with `shlex.quote`; header
values redacted in the store stay `[REDACTED]` (the reviewer fills them in).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

# Set by curl itself or meaningful for one hop only.
_SKIP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "upgrade",
    }
)


def target(path: str, query: str | None) -> str:
    return f"{path}?{query}" if query else path


def curl_command(
    base_url: str | None,
    placeholder: str,
    method: str,
    path: str,
    query: str | None,
    headers: Iterable[tuple[str, str]],
    body: str | None,
) -> str:
    """The command, one option per line; `$placeholder` stands in for an unknown base URL."""
    where = target(path, query)
    if base_url:
        url = shlex.quote(base_url.rstrip("/") + where)
    else:
        url = f'"${{{placeholder}}}"' + shlex.quote(where)
    method = method.upper()
    if method == "GET":
        first = f"curl -sS {url}"
    elif method == "HEAD":
        first = f"curl -sS --head {url}"
    else:
        first = f"curl -sS -X {shlex.quote(method)} {url}"
    parts = [first]
    for name, value in headers:
        if name.lower() not in _SKIP_HEADERS:
            parts.append(f"-H {shlex.quote(f'{name}: {value}')}")
    if body:
        parts.append(f"--data-raw {shlex.quote(body)}")
    return " \\\n  ".join(parts)
