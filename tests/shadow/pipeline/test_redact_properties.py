"""Properties: a secret, wherever it is put in traffic, never reaches the store or a recording.

Secrets are drawn from an alphabet the rest of the generated traffic never
uses (QXZJVK in both cases), so any run of six of its letters in what was
stored is a leak, a whole secret or a piece cut by the body cap. Rows are built
by the real evaluator (`evaluate.evaluate` on a real `Exchange`), recordings by
the real recorder; one test writes a DuckDB store through tests/store_builder.py
and reads every text column back.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from comparators.model import Payload
from shadow.config.loader import Config
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.evaluate import evaluate
from shadow.pipeline.recording import RedactingRecorder, open_recorder
from shadow.store.writer import open_for_reading
from tests.store_builder import Call, write_store

SECRET_ALPHABET = "QXZJVKqxzjvk"
LEAK = re.compile(f"[{SECRET_ALPHABET}]{{6,}}")
FILLER_ALPHABET = "abcdefghilmnoprstuwy0123456789_. -"  # no letter of the secrets
EXAMPLES = settings(max_examples=200, deadline=None)

secrets = st.text(SECRET_ALPHABET, min_size=12, max_size=40)
filler_text = st.text(FILLER_ALPHABET, max_size=12)
filler_key = st.sampled_from(["id", "name", "items", "data", "meta", "author", "pinned", "note"])
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | filler_text
filler_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(filler_key, inner, max_size=3),
    max_leaves=8,
)

SECRET_HEADERS = [
    "Authorization", "Proxy-Authorization", "X-Forwarded-Authorization", "Authentication",
    "Cookie", "Set-Cookie", "X-Api-Key", "Api-Key", "X-Access-Key", "X-Amz-Credential",
    "X-Amz-Security-Token", "X-Auth-Token", "X-Refresh-Token", "X-Session-Id", "X-CSRF-Token",
    "X-Client-Secret", "X-Otp", "X-Pin",
]  # fmt: skip
SECRET_KEYS = [
    "password", "passwd", "pass", "token", "access_token", "accessToken", "refresh",
    "refresh_token", "auth", "session", "sessionId", "pin", "otp", "passcode", "client_secret",
    "private_key", "privateKey", "ssn", "credentials", "apiKey", "api_key", "secret", "jwt",
    "cvv", "card_number", "X-Amz-Signature", "signature",
]  # fmt: skip
SECRET_PARAMS = [*SECRET_KEYS, "code", "key", "sig", "ticket", "X-Amz-Credential"]
CASES = [str, str.lower, str.upper, str.title, str.swapcase]

secret_header_names = st.builds(lambda n, f: f(n), st.sampled_from(SECRET_HEADERS),
                                st.sampled_from(CASES))  # fmt: skip
secret_params = st.sampled_from(SECRET_PARAMS)


# --- traffic with one secret somewhere ---------------------------------------------------


@st.composite
def json_with_secret(draw: st.DrawFn, secret: str) -> Any:
    """A JSON value holding `secret` under a secret key (any value shape) or in a URL."""
    key = draw(st.sampled_from(SECRET_KEYS))
    param = draw(secret_params)
    holder = draw(
        st.sampled_from(["value", "object", "array", "deep", "url", "fragment", "embedded"])
    )
    node: Any
    if holder == "value":
        node = {key: secret}
    elif holder == "object":
        node = {key: {"v": secret, "n": draw(filler_json)}}
    elif holder == "array":
        node = {key: [draw(filler_json), secret]}
    elif holder == "deep":
        node = {key: {"a": [{"b": [secret]}]}}
    elif holder == "url":
        node = {"next": f"https://h.test/p?page=2&{param}={secret}&x=1"}
    elif holder == "fragment":
        node = {"next": f"https://h.test/cb#{param}={secret}"}
    else:
        node = {"payload": json.dumps({"note": "n", key: secret})}
    # any depth: wrapped in objects and lists, with filler beside it
    for wrap in draw(st.lists(st.sampled_from(["object", "array"]), max_size=5)):
        siblings = draw(st.dictionaries(filler_key, filler_json, max_size=2))
        if wrap == "object":
            node = {**siblings, "wrapped": node}
        else:
            items = draw(st.lists(filler_json, max_size=2))
            node = [*items[: len(items) // 2], node, *items[len(items) // 2 :]]
    return node


@st.composite
def form_with_secret(draw: st.DrawFn, secret: str) -> str:
    fields = draw(st.lists(st.tuples(st.sampled_from(["a", "page", "user", "x_y"]),
                                     st.text("abc0123", max_size=6)), max_size=5))  # fmt: skip
    at = draw(st.integers(0, len(fields)))
    fields.insert(at, (draw(secret_params), secret))
    sep = draw(st.sampled_from(["&", "\n", "\r\n"]))
    return sep.join(f"{k}={v}" for k, v in fields)


@st.composite
def multipart_with_secret(draw: st.DrawFn, secret: str) -> tuple[str, str]:
    boundary = draw(st.text("abcdef0123456789-", min_size=6, max_size=20))
    names = draw(st.lists(st.sampled_from(["user", "file", "note", "meta"]), max_size=4))
    parts = [(n, draw(st.text("abc 0123", max_size=10))) for n in names]
    parts.insert(draw(st.integers(0, len(parts))), (draw(secret_params), secret))
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
        for n, v in parts
    )
    return body + f"--{boundary}--\r\n", f"multipart/form-data; boundary={boundary}"


@dataclass
class Traffic:
    request: Request
    primary: Payload
    candidate: Payload


JSON_TYPES = [None, "application/json", "application/vnd.api+json; charset=utf-8"]


@st.composite
def traffic(draw: st.DrawFn) -> tuple[Traffic, str]:
    """A request and two answers, the secret in one place of one of them."""
    secret = draw(secrets)
    where = draw(st.sampled_from(["header", "query", "json", "form", "multipart",
                                  "response_header", "response_json", "error_json"]))  # fmt: skip
    headers: list[tuple[str, str]] = [("Accept", "*/*")]
    query = "page=1"
    body = b""
    primary_headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    primary_body: Any = {"ok": True}
    candidate_body: Any = {"ok": False}
    if where == "header":
        prefix = draw(st.sampled_from(["", "Bearer ", "Basic ", "sid="]))
        headers.insert(draw(st.integers(0, 1)), (draw(secret_header_names), prefix + secret))
    elif where == "query":
        params = draw(st.lists(st.sampled_from(["a=1", "page=2", "sort=name", "q=x"]), max_size=4))
        params.insert(draw(st.integers(0, len(params))), f"{draw(secret_params)}={secret}")
        query = draw(st.sampled_from(["&", ";"])).join(params)
    elif where == "json":
        ctype = draw(st.sampled_from(JSON_TYPES))
        if ctype:
            headers.append(("Content-Type", ctype))
        body = json.dumps(draw(json_with_secret(secret))).encode()
    elif where == "form":
        if draw(st.booleans()):
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        body = draw(form_with_secret(secret)).encode()
    elif where == "multipart":
        text, ctype = draw(multipart_with_secret(secret))
        if draw(st.booleans()):
            headers.append(("Content-Type", ctype))
        body = text.encode()
    elif where == "response_header":
        primary_headers.append((draw(secret_header_names), secret))
    else:
        primary_body = draw(json_with_secret(secret))
        if where == "error_json":  # the candidate answers otherwise: differences hold values
            candidate_body = {"error": draw(filler_json)}
        else:
            candidate_body = draw(json_with_secret(secret[::-1]))
    t = Traffic(
        Request("POST", "/api/items/7", query, tuple(headers), body),
        Payload(200, tuple(primary_headers), json.dumps(primary_body).encode()),
        Payload(200, (("Content-Type", "application/json"),), json.dumps(candidate_body).encode()),
    )
    return t, secret


def stored_text(t: Traffic, body_cap: int) -> str:
    """Every field of every row the evaluator produces for this traffic, as one text."""
    ex = Exchange(
        id="x1",
        request=t.request,
        primary=BackendResponse(t.primary, 5.0),
        candidate=BackendResponse(t.candidate, 6.0),
        endpoint="POST /api/items/{id}",
        started_at=1_700_000_000.0,
        secondary=BackendResponse(t.candidate, 7.0),
    )
    result = evaluate(ex, Config(), "run", body_cap, "all")
    rows = [result.row, *result.differences, *result.noise]
    return "\n".join(str(v) for row in rows for v in row)


def recorded_bytes(t: Traffic, ext: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / f"rec.{ext}")
        recorder = RedactingRecorder(open_recorder(path), "http://primary.test")
        recorder.add(t.request, t.primary, 1_700_000_000.0, 5.0)
        recorder.close()
        assert recorder.failed is None
        return Path(path).read_bytes()


def assert_no_leak(text: str, secret: str) -> None:
    assert secret not in text
    assert not LEAK.search(text), LEAK.search(text)


# --- the properties ----------------------------------------------------------------------


@EXAMPLES
@given(traffic(), st.sampled_from([24, 60, 150, 400, 64 * 1024]))
def test_secrets_never_reach_the_store(case: tuple[Traffic, str], body_cap: int) -> None:
    t, secret = case
    assert_no_leak(stored_text(t, body_cap), secret)


@EXAMPLES
@given(traffic(), st.sampled_from(["jsonl", "har", "mitm"]))
def test_secrets_never_reach_a_recording(case: tuple[Traffic, str], ext: str) -> None:
    t, secret = case
    raw = recorded_bytes(t, ext)
    assert secret.encode() not in raw
    assert not LEAK.search(raw.decode("latin-1"))


@EXAMPLES
@given(secrets, st.sampled_from(["/reset/{s}", "/a/{s}/b", "/files/x-{s}.txt"]))
def test_configured_path_patterns_hide_path_secrets(secret: str, shape: str) -> None:
    from shadow.config.loader import parse_config

    config = parse_config({"redact": {"paths": ["^/reset/([^/]+)", "/a/([^/]+)/b", "x-(\\w+)"]}})
    t = Traffic(
        Request("GET", shape.format(s=secret), "", (("Accept", "*/*"),)),
        Payload(200, (), b"{}"),
        Payload(200, (), b"{}"),
    )
    ex = Exchange("x", t.request, BackendResponse(t.primary), BackendResponse(t.candidate),
                  "GET /p", 1.0)  # fmt: skip
    result = evaluate(ex, config, "run", 1024, "all")
    assert_no_leak("\n".join(map(str, result.row)), secret)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "rec.jsonl")
        recorder = RedactingRecorder(open_recorder(path), "http://p.test", config.redact)
        recorder.add(t.request, t.primary, 1.0, 1.0)
        recorder.close()
        assert secret not in Path(path).read_text(encoding="utf-8")


# --- end to end through the real store writer --------------------------------------------

TOKEN = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU"  # looks random: hidden in the stored path


def test_store_written_by_the_real_writer_has_no_secret(tmp_path: Path) -> None:
    secrets_ = {
        "header": "QXZJVKqxzjvkHEADER",
        "cookie": "QXZJVKqxzjvkCOOKIE",
        "body": "QXZJVKqxzjvkBODY",
        "nested": "QXZJVKqxzjvkNESTED",
        "url": "QXZJVKqxzjvkURL",
        "removed": "QXZJVKqxzjvkREMOVED",
    }
    primary = {
        "id": 1,
        "token": {"value": secrets_["body"], "scopes": ["a"]},
        "user": {"author": "ada", "credentials": [{"k": secrets_["nested"]}]},
        "next": f"https://h.test/p?access_token={secrets_['url']}&page=2",
        "session": {"id": secrets_["removed"]},
    }
    candidate = {**primary, "id": 2, "next": "https://h.test/p?page=3"}
    del candidate["session"]
    calls = [
        Call(
            "GET /api/reset/{id}",
            primary,
            candidate,
            secondary=primary,
            path=f"/api/reset/{TOKEN}",
            headers=(
                ("Authorization", f"Bearer {secrets_['header']}"),
                ("Cookie", f"sid={secrets_['cookie']}"),
            ),
        )
    ]
    db = write_store(tmp_path / "s.duckdb", calls, bodies="all")
    con = open_for_reading(db, wait=5)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
        ).fetchall()
        stored = []
        for table, column in columns:
            stored += [v for (v,) in con.execute(f'SELECT "{column}" FROM "{table}"').fetchall()]
        path, endpoint = con.execute("SELECT path, endpoint FROM exchanges").fetchone() or ("", "")
        (n_diffs,) = con.execute("SELECT count(*) FROM differences").fetchone() or (0,)
    finally:
        con.close()
    text = "\n".join(str(v) for v in stored)
    for secret in [*secrets_.values(), TOKEN]:
        assert secret not in text, secret
    assert not LEAK.search(text)
    assert "[REDACTED]" in text
    assert '"author":"ada"' in text  # the rest of a redacted body is kept
    assert path == "/api/reset/[REDACTED]"
    assert endpoint == "GET /api/reset/{id}"
    assert n_diffs >= 2  # the removed session and the changed URL were stored, redacted
