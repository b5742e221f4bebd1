"""Sticky canary buckets: monotonic in the percentage, stable per user, spread evenly."""

from __future__ import annotations

import base64
import json

import mmh3
from hypothesis import given
from hypothesis import strategies as st

from shadow.control import bucket

keys = st.text(min_size=1, max_size=64)
percents = st.integers(min_value=0, max_value=100)


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@given(keys, percents, percents)
def test_raising_the_percentage_only_adds_users(key: str, a: int, b: int) -> None:
    low, high = sorted((a, b))
    route = "/api/analysis/{id}"
    if bucket.in_canary(route, key, low):
        assert bucket.in_canary(route, key, high)  # raising never removes a user
    if not bucket.in_canary(route, key, high):
        assert not bucket.in_canary(route, key, low)  # lowering never adds one


@given(keys)
def test_bucket_is_murmur3_of_route_and_key(key: str) -> None:
    expected = mmh3.hash(f"/r:{key}".encode("utf-8", "surrogateescape"), 0, signed=False) % 100 + 1
    assert bucket.bucket("/r", key) == expected
    assert 1 <= expected <= 100
    assert not bucket.in_canary("/r", key, 0)
    assert bucket.in_canary("/r", key, 100)


def test_raw_bytes_in_route_or_key_are_hashed_not_fatal() -> None:
    # A path or header byte that is not UTF-8 reaches us as a lone surrogate.
    value = bucket.bucket("/x/\udcff", "user-\udcfe")
    assert 1 <= value <= 100
    assert value == mmh3.hash(b"/x/\xff:user-\xfe", 0, signed=False) % 100 + 1


def test_share_of_users_follows_the_percentage() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    for percent in (1, 10, 25, 50, 90):
        share = sum(bucket.in_canary("/api/x", u, percent) for u in users) / len(users)
        assert abs(share - percent / 100) < 0.015, (percent, share)


def test_routes_pick_different_users() -> None:
    users = [f"user-{i}" for i in range(5_000)]
    a = {u for u in users if bucket.in_canary("/api/a", u, 10)}
    b = {u for u in users if bucket.in_canary("/api/b", u, 10)}
    assert a and b and a != b
    assert len(a & b) < len(a) / 3  # about 10 % of a, as for independent draws


def test_user_key_sources_in_order() -> None:
    headers = [
        ("Cookie", "theme=dark; shadow_uid=abc123"),
        ("Authorization", "Bearer " + _jwt({"sub": "user-42"})),
        ("X-User-Id", "u7"),
    ]
    assert bucket.user_key(headers, ("header:x-user-id", "jwt:sub"), "shadow_uid") == (
        "u7",
        "header:x-user-id",
    )
    assert bucket.user_key(headers, ("jwt:sub",), "shadow_uid") == ("user-42", "jwt:sub")
    assert bucket.user_key(headers, (), "shadow_uid") == ("abc123", "cookie:shadow_uid")
    assert bucket.user_key([("Cookie", "x=1")], ("jwt:sub",), "shadow_uid") == (None, "")


def test_malformed_inputs_give_no_key() -> None:
    bad = [
        ("Authorization", "Bearer not-a-jwt"),
        ("Authorization", "Bearer a.%%%.c"),
        ("Authorization", "Basic dXNlcjpwdw=="),
        ("Authorization", "Bearer " + _jwt({"sub": True})),
        ("Authorization", "Bearer " + "a." * 10_000 + "b"),
    ]
    for header in bad:
        assert bucket.user_key([header], ("jwt:sub",), "uid") == (None, "")
    # A cookie header the standard parser rejects still yields our cookie.
    assert bucket.cookie_value('a="unterminated; uid=k9', "uid") == "k9"


def test_set_cookie_is_long_lived_and_http_only() -> None:
    value = bucket.new_key()
    header = bucket.set_cookie("shadow_uid", value, secure=True)
    assert header.startswith(f"shadow_uid={value};")
    for part in ("Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age="):
        assert part in header
    assert bucket.new_key() != value
