"""A copyable `curl` command that repeats a stored request against one backend.

Everything taken from the store is shell-quoted with `shlex.quote`. The path,
query, headers and body come from the store, redacted when written: secrets
there stay `[REDACTED]` (the reviewer fills them in). The backend's base URL
comes from the run's row as given on the command line, so a password in it
(`http://user:pw@host`) is hidden here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

_PASSWORD_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@")

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
        base = _PASSWORD_RE.sub(r"\1:[REDACTED]@", base_url.rstrip("/"))
        url = shlex.quote(base + where)
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
