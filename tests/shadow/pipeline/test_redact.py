"""shadow.pipeline.redact: secrets never reach the store."""

from __future__ import annotations

import json

import pytest

from shadow.pipeline.redact import (
    REDACTED,
    is_secret_header,
    is_secret_path,
    redact_body_text,
    redact_headers,
    redact_query,
)

SECRET_HEADERS = [
    "Authorization",
    "authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "x-api-key",
    "X-Auth-Token",
    "X-Amz-Security-Token",
    "X-Client-Secret",
]
KEPT_HEADERS = ["Content-Type", "Accept", "User-Agent", "X-Request-Id", "Content-Length", "Host"]


@pytest.mark.parametrize("name", SECRET_HEADERS)
def test_secret_headers(name: str) -> None:
    assert is_secret_header(name)


@pytest.mark.parametrize("name", KEPT_HEADERS)
def test_ordinary_headers(name: str) -> None:
    assert not is_secret_header(name)


def test_redact_headers_keeps_names_order_and_other_values() -> None:
    headers = [
        ("Host", "example.com"),
        ("Authorization", "Bearer abc.def"),
        ("Cookie", "session=s3cr3t"),
        ("Accept", "application/json"),
        ("X-Api-Key", "k-123"),
        ("X-Auth-Token", "tok"),
        ("Set-Cookie", "sid=1; HttpOnly"),
        ("Set-Cookie", "other=2"),
    ]
    out = redact_headers(headers)
    assert out == (
        ("Host", "example.com"),
        ("Authorization", REDACTED),
        ("Cookie", REDACTED),
        ("Accept", "application/json"),
        ("X-Api-Key", REDACTED),
        ("X-Auth-Token", REDACTED),
        ("Set-Cookie", REDACTED),
        ("Set-Cookie", REDACTED),
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("token=abc", f"token={REDACTED}"),
        ("a=1&token=abc&b=2", f"a=1&token={REDACTED}&b=2"),
        ("api_key=zz&page=3", f"api_key={REDACTED}&page=3"),
        ("API-KEY=zz", f"API-KEY={REDACTED}"),
        ("access_token=x&password=y", f"access_token={REDACTED}&password={REDACTED}"),
        ("page=2&sort=name", "page=2&sort=name"),
        ("monkey=1&page=2", "monkey=1&page=2"),
        ("tokens=2", "tokens=[REDACTED]"),  # any name holding a secret word: over, not under
        ("", ""),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_redact_json_body_members() -> None:
    body = json.dumps(
        {
            "user": "bob",
            "password": "hunter2",
            "token": "t-1",
            "api_key": "k-2",
            "nested": {"access_token": 'a\\"b', "name": "keep"},
            "list": [{"secret": "s"}],
        }
    )
    out = redact_body_text(body)
    data = json.loads(out)
    assert data["user"] == "bob"
    assert data["nested"]["name"] == "keep"
    assert data["password"] == data["token"] == data["api_key"] == REDACTED
    assert data["nested"]["access_token"] == REDACTED
    assert data["list"][0]["secret"] == REDACTED
    for secret in ("hunter2", "t-1", "k-2", 'a\\"b'):
        assert secret not in out


def test_redact_json_with_spacing_and_case() -> None:
    out = redact_body_text('{ "Password" :  "x1" , "Token":"y2" }')
    assert "x1" not in out and "y2" not in out
    assert out.count(REDACTED) == 2


def test_redact_form_body() -> None:
    out = redact_body_text("user=bob&password=hunter2&api_key=k&x=1")
    assert out == f"user=bob&password={REDACTED}&api_key={REDACTED}&x=1"


def test_redact_body_leaves_other_text_alone() -> None:
    text = '{"name": "token holder", "count": 3, "description": "password reset"}'
    assert redact_body_text(text) == text  # secret words in VALUES are not keys


def test_redact_body_errs_on_the_side_of_hiding() -> None:
    out = redact_body_text('{"tokens": 3, "sessionId": "s1", "user": "bob"}')
    # parsed, changed, so written again compactly
    assert out == '{"tokens":"[REDACTED]","sessionId":"[REDACTED]","user":"bob"}'


def test_redact_json_numeric_secret() -> None:
    assert "123456" not in redact_body_text('{"password": 123456}')


@pytest.mark.parametrize(
    "path",
    [
        "$.password",
        "$.user.token",
        '$["api_key"]',
        "$['secret']",
        "$.items[0].access_token",
        "$.auth.client_secret",
        "$.tokens[0]",  # an item of a credential list
        "$.password.length",  # below a credential key
        "$.session_id",
        '$["api-key"]',
        "$.user.session",  # a session object holds its id: hidden whole
    ],
)
def test_secret_paths(path: str) -> None:
    assert is_secret_path(path)


@pytest.mark.parametrize(
    "path", ["$.name", "$.items[0]", "$.user.author", "$status", "$body", "$header.etag"]
)
def test_non_secret_paths(path: str) -> None:
    assert not is_secret_path(path)
