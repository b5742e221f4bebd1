"""Sticky canary buckets: which users a route's canary percentage covers.

bucket = murmur3_32(f"{route}:{key}") mod 100 + 1, in 1-100 (Unleash's
`normalizedValue`), and a user is in the canary when bucket <= percent. The
bucket of a (route, user) never changes, so raising 10 % -> 25 % only adds
users (those with buckets 11-25) and lowering only removes them. The route is
part of the hash: a user in the 10 % of one route is not for that reason in the
10 % of every other.

The key is the first of the configured sources a request carries (a header, a
cookie, a JWT claim), else the proxy's own cookie, which it sets on the answer
when the request had none.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence

import mmh3
import orjson

MAX_KEY = 512  # characters of a key hashed (a longer header is cut: still sticky)
MAX_JWT = 8192  # bytes of a bearer token decoded for its claims
COOKIE_MAX_AGE = 365 * 24 * 3600


def bucket(route: str, key: str) -> int:
    """The user's bucket on `route`, 1-100."""
    # As bytes: a raw byte in a path or header (a lone surrogate here) is hashed as sent;
    # mmh3 given such a str crashes the process.
    data = f"{route}:{key[:MAX_KEY]}".encode("utf-8", "surrogateescape")
    return mmh3.hash(data, 0, signed=False) % 100 + 1


def in_canary(route: str, key: str, percent: int) -> bool:
    """Whether the user `key` is among the `percent` % of `route`'s users."""
    return percent > 0 and bucket(route, key) <= percent


def new_key() -> str:
    """A random key for a user who brought none (set as the proxy's cookie)."""
    return secrets.token_urlsafe(16)


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, or None.

    Split by hand: the standard parser stops silently at the first malformed
    cookie, and a browser sends whatever other sites' scripts set.
    """
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"') or None
    return None


def jwt_claim(authorization: str, claim: str) -> str | None:
    """A claim of the bearer token in an Authorization header (unverified: only bucketed)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or len(token) > MAX_JWT:
        return None
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(body))
    except (binascii.Error, ValueError):
        return None
    value = claims.get(claim) if isinstance(claims, dict) else None
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def user_key(
    headers: Sequence[tuple[str, str]], sources: Sequence[str], cookie: str
) -> tuple[str | None, str]:
    """The user's key from the first configured source that has one, and where it came from.

    `sources` are "header:<name>", "cookie:<name>" or "jwt:<claim>"; the proxy's
    own `cookie` is tried last. (None, "") when the request carries none.
    """
    lowered: dict[str, str] = {}
    for k, v in headers:
        lowered.setdefault(k.lower(), v)
    cookies = "; ".join(v for k, v in headers if k.lower() == "cookie")
    for source in (*sources, f"cookie:{cookie}"):
        kind, _, name = source.partition(":")
        value: str | None = None
        if kind == "header":
            value = lowered.get(name.lower(), "").strip() or None
        elif kind == "cookie":
            value = cookie_value(cookies, name) if cookies else None
        elif kind == "jwt":
            auth = lowered.get("authorization")
            value = jwt_claim(auth, name) if auth else None
        if value:
            return value, source
    return None, ""


def set_cookie(name: str, value: str, secure: bool) -> str:
    """The Set-Cookie header that keeps a user's key for the next requests."""
    flags = "; Secure" if secure else ""
    return f"{name}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax{flags}"
