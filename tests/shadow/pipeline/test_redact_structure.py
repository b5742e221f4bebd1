"""shadow.pipeline.redact by structure: each hole of the regex-only redaction, closed.

Tables per hole (values under secret keys whatever their type, names by word
parts both ways, forms anywhere, multipart parts, URLs inside strings, headers,
paths), then the same through the real row builder, recorder and curl command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comparators import Comparison, Difference, Kind, Payload, Verdict
from reports.curl import curl_command
from shadow.config.loader import RedactSettings
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.recording import RedactingRecorder, open_recorder, redact_body
from shadow.pipeline.records import body_for_review, difference_rows, exchange_row
from shadow.pipeline.redact import (
    DEFAULT,
    REDACTED,
    Redactor,
    looks_random,
    name_parts,
    redact_body_text,
    redactor_for,
)
from shadow.sources import read_traffic
from shadow.store.schema import EXCHANGE_COLUMNS

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"

# --- names, both directions ----------------------------------------------------------------

SECRET_NAMES = [
    # the holes of the sweep
    "auth", "session", "refresh", "pin", "otp", "refresh_token", "passcode", "client_secret",
    "private_key", "ssn",
    # word parts, any case and separator
    "sessionId", "SESSION_ID", "X-Refresh-Token", "accessToken", "ACCESS_TOKEN", "apiKey",
    "APIKey", "x-api-key", "api_key", "privateKey", "user[password]", "user_pin", "pinCode",
    "otp_code", "mfa_code", "recovery_codes", "card_number", "cvv", "iban",
    "social_security_number", "authToken", "oauth_token", "oauth_verifier", "code_verifier",
    "id_token", "csrfmiddlewaretoken", "X-CSRF-Token", "PHPSESSID", "JSESSIONID", "connect.sid",
    "passwd", "pwd", "pass", "passphrase", "credentials", "creds", "secrets", "tokens",
    "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "hmac",
    "jwt", "bearer", "SAMLResponse", "client_assertion", "access", "webhook_secret",
    "signing_key", "access_key_id", "Ocp-Apim-Subscription-Key", "password%5Fhash",
]  # fmt: skip
HARMLESS_NAMES = [
    "author", "authority", "authors", "authorName", "authored_by", "authorized", "unauthorized",
    "pinned", "pinnedAt", "spinner", "pinyin", "shipping", "key", "keys", "keyboard", "monkey",
    "public_key", "publicKey", "keyId", "sort_key", "code", "error_code", "zip_code", "passed",
    "passenger", "bypass", "compass", "passport", "side", "sidebar", "inside", "consider",
    "lesson", "design", "signed", "signal", "assign", "options", "secretary", "tokenizer",
    "access_level", "accessible", "refreshed_at", "refresh_rate", "description", "name", "id",
    "user", "email", "status", "type", "oauth2", "authenticated", "x-request-id", "content-type",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert DEFAULT.is_secret_key(name), name
    assert DEFAULT.is_secret_param(name), name
    assert DEFAULT.is_secret_header(name), name


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names(name: str) -> None:
    assert not DEFAULT.is_secret_key(name), name


@pytest.mark.parametrize("name", ["code", "key", "ticket"])
def test_query_only_names(name: str) -> None:
    assert DEFAULT.is_secret_param(name) and not DEFAULT.is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["X-Forwarded-Authorization", "Authentication", "X-Access-Key", "X-Amz-Credential",
     "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Auth-Token", "X-Session-Id", "DPoP",
     "X-Hub-Signature-256", "X-Vault-Token", "X-Goog-Api-Key", "X-Api-Secret"],
)  # fmt: skip
def test_secret_headers(name: str) -> None:
    assert DEFAULT.is_secret_header(name)


@pytest.mark.parametrize(
    "name",
    [":authority", "Host", "Accept", "Content-Type", "Content-Length", "User-Agent", "ETag",
     "X-Request-Id", "Sec-WebSocket-Key", "X-Authenticated-User", "Cache-Control", "Location"],
)  # fmt: skip
def test_kept_headers(name: str) -> None:
    assert not DEFAULT.is_secret_header(name)


def test_name_parts() -> None:
    assert name_parts("X-Refresh-Token") == ("x", "refresh", "token")
    assert name_parts("sessionId") == ("session", "id")
    assert name_parts("APIKey") == ("api", "key")
    assert name_parts("user[password]") == ("user", "password")


def test_configured_names_match_by_word_parts() -> None:
    r = Redactor(headers=["X-Tenant-Key"], keys=["customer_ref"], query=["ref_code"])
    assert r.is_secret_header("x-tenant-key") and r.is_secret_header("X-TENANT-KEY-2")
    assert not r.is_secret_header("X-Tenant") and not r.is_secret_key("tenant_key")
    for name in ("customer_ref", "customerRef", "CUSTOMER-REFS", "oldCustomerRef"):
        assert r.is_secret_key(name) and r.is_secret_param(name)
    assert not r.is_secret_key("customer") and not r.is_secret_key("ref_customer")
    assert r.is_secret_param("refCode") and not r.is_secret_key("refCode")


# --- values under secret keys: the whole subtree -----------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"credentials": ["abc"]}, {"credentials": REDACTED}),
        ({"token": {"v": "x"}}, {"token": REDACTED}),
        ({"session": {"id": "s", "user": {"n": 1}}}, {"session": REDACTED}),
        ({"a": [{"b": {"apiKey": [1, {"c": "d"}]}}]}, {"a": [{"b": {"apiKey": REDACTED}}]}),
        ({"pin": 1234, "otp": 99.5, "auth": True}, {"pin": REDACTED, "otp": REDACTED,
                                                    "auth": REDACTED}),
        ({"password": None, "x": 1}, {"password": None, "x": 1}),  # null hides nothing
        ([{"refresh": "r1"}, {"access": "a1", "access_level": 2}],
         [{"refresh": REDACTED}, {"access": REDACTED, "access_level": 2}]),
        ({"author": "ada", "pinned": True, "key": "color"},
         {"author": "ada", "pinned": True, "key": "color"}),
    ],
)  # fmt: skip
def test_whole_values_under_secret_keys(body: object, expected: object) -> None:
    out = redact_body_text(json.dumps(body), JSON_TYPE)
    assert json.loads(out) == expected


def test_unchanged_json_keeps_its_text() -> None:
    text = '{ "name" : "token holder",\n  "n": 1.50, "description": "password reset" }'
    assert redact_body_text(text, JSON_TYPE) is text


def test_changed_json_is_written_compact_and_keeps_numbers() -> None:
    text = '{"id": 123456789012345678901234567890, "r": 1.5, "t": "x", "é": "ü", "token": "s"}'
    out = redact_body_text(text, JSON_TYPE)
    assert (
        out == '{"id":123456789012345678901234567890,"r":1.5,"t":"x","é":"ü","token":"[REDACTED]"}'
    )


def test_escaped_secret_keys_are_found() -> None:
    out = redact_body_text('{"pass\\u0077ord": "hunter2", "a": 1}', JSON_TYPE)
    assert "hunter2" not in out and json.loads(out)["password"] == REDACTED


def test_json_inside_a_string() -> None:
    inner = json.dumps({"token": "inner-secret", "n": 1})
    out = redact_body_text(json.dumps({"payload": inner, "other": "[not json"}), JSON_TYPE)
    data = json.loads(out)
    assert json.loads(data["payload"]) == {"token": REDACTED, "n": 1}
    assert data["other"] == "[not json"


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ('{"a": "x", "password": "cut-off-sec', "cut-off-sec", '{"a": "x", "password": '),
        ('{"a": 1, "token": {"v": [1, 2, {"deep": "sec', "sec", '{"a": 1, "token": '),
        ('[{"x": 1}, {"client_secret": "s3", "y": [1', "s3", '"y": [1'),
        ('{"next": "https://x/?sig=zz9&page=2", "more": "cut', "zz9", "page=2"),
        ('{"a":1}\n{"password":"nd-json"}\n', "nd-json", '{"a":1}\n'),
        (")]}',\n" + '{"secret": "xssi"}', "xssi", ")]}',"),
        ('{"pin": 12', "12", '{"pin": '),
    ],
)
def test_json_that_does_not_parse_is_scanned(text: str, gone: str, kept: str) -> None:
    out = redact_body_text(text, JSON_TYPE)
    assert gone not in out
    assert kept in out
    assert REDACTED in out


def test_deep_json_neither_blows_the_stack_nor_leaks() -> None:
    deep = "[" * 20_000 + '{"token": "deep-secret", "x": "https://h/?code=c0de"}' + "]" * 20_000
    out = redact_body_text(deep, JSON_TYPE)
    assert "deep-secret" not in out and "c0de" not in out
    # parsed, but deeper than the walk goes: the deep part is hidden, not kept raw
    nested = '{"a":' * 300 + '{"token": "s2", "keep": 1}' + "}" * 300
    out = redact_body_text(nested, JSON_TYPE)
    assert "s2" not in out and out.startswith('{"a":{"a":')
    assert redact_body_text("[" * 5000 + "1" + "]" * 5000, JSON_TYPE).count("[") == 5000


# --- URLs and other shapes inside strings -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://x/y?access_token=abc", f"https://x/y?access_token={REDACTED}"),
        ("https://x/y?page=2&X-Amz-Signature=ff&a=1", f"https://x/y?page=2&X-Amz-Signature={REDACTED}&a=1"),
        ("https://app/cb#access_token=abc&state=1", f"https://app/cb#access_token={REDACTED}&state=1"),
        ("see https://x/?code=abc and more", f"see https://x/?code={REDACTED} and more"),
        ("postgres://app:hunter2@db:5432/x", f"postgres://app:{REDACTED}@db:5432/x"),
        ("https://x/login?next=https%3A%2F%2Fy%2Fcb%3Ftoken%3Dabc",
         f"https://x/login?next=https://y/cb%3Ftoken%3D{REDACTED}"),
        # a secret value runs to a space, `&` or quote: over, not under
        ("Server=db;Password=hunter2;Timeout=3", f"Server=db;Password={REDACTED}"),
        ('<a href="/x?token=abc">', f'<a href="/x?token={REDACTED}">'),
        ('password="quoted secret"', f'password="{REDACTED}"'),
        ("Bearer abcdefghijklmnopqrstuvwxyz012345", f"Bearer {REDACTED}"),
        ("a eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl b", f"a {REDACTED} b"),
        ("https://x/reset/aB3dE5fG7hJ9kL1mN3pQ5rS7tU?x=1", f"https://x/reset/{REDACTED}?x=1"),
        ("/reset/aB3dE5fG7hJ9kL1mN3pQ5rS7tU", f"/reset/{REDACTED}"),
        # kept
        ("https://x/items/42?page=2&sort=name", None),
        ("https://x/items/550e8400-e29b-41d4-a716-446655440000", None),
        ("a=b, the token expired", None),
        ("2024-05-02T09:25:00Z", None),
        ("x == y", None),
        ("[REDACTED]", None),
    ],
)  # fmt: skip
def test_strings(value: str, expected: str | None) -> None:
    assert DEFAULT.text(value) == (value if expected is None else expected)
    # the same inside a JSON body
    out = json.loads(redact_body_text(json.dumps({"v": value, "n": [value]}), JSON_TYPE))
    assert out == {"v": expected or value, "n": [expected or value]}


# --- forms and multipart -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("user=bob&password=hunter2&x=1", FORM_TYPE, f"user=bob&password={REDACTED}&x=1"),
        ("x=1&y=2&refresh_token=abc", FORM_TYPE, f"x=1&y=2&refresh_token={REDACTED}"),
        ("x=1\npassword=hunter2\ncode=abc\n", None, f"x=1\npassword={REDACTED}\ncode={REDACTED}\n"),
        ("x=1\r\nclient_secret=s\r\ny=2", FORM_TYPE, f"x=1\r\nclient_secret={REDACTED}\r\ny=2"),
        ("grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fa%2Fcb", FORM_TYPE,
         f"grant_type=authorization_code&code={REDACTED}&redirect_uri=https%3A%2F%2Fa%2Fcb"),
        ("a=1&user%5Bpassword%5D=pw", FORM_TYPE, f"a=1&user%5Bpassword%5D={REDACTED}"),
        ("next=https%3A%2F%2Fy%2F%3Ftoken%3Dabc&a=1", FORM_TYPE,
         f"next=https://y/%3Ftoken%3D{REDACTED}&a=1"),
        ("payload=%7B%22token%22%3A%22abc%22%7D", FORM_TYPE,
         "payload=" + "%7B%22token%22:%22[REDACTED]%22%7D"),
        ("page=2&sort=name", FORM_TYPE, "page=2&sort=name"),
    ],
)  # fmt: skip
def test_forms_anywhere(body: str, content_type: str | None, expected: str) -> None:
    assert redact_body_text(body, content_type) == expected


def multipart(parts: list[tuple[str, str, str | None]], boundary: str = "XyZ123") -> str:
    out = []
    for name, value, ctype in parts:
        head = f'Content-Disposition: form-data; name="{name}"'
        if ctype:
            head += f"\r\nContent-Type: {ctype}"
        out.append(f"--{boundary}\r\n{head}\r\n\r\n{value}\r\n")
    return "".join(out) + f"--{boundary}--\r\n"


@pytest.mark.parametrize("declared", [True, False])
def test_multipart_parts_by_name(declared: bool) -> None:
    body = multipart(
        [
            ("user", "bob", None),
            ("password", "hunter2", None),
            ("meta", '{"api_key": "k-1", "n": 1}', JSON_TYPE),
            ("note", "see https://x/?token=abc", "text/plain"),
            ("file", "plain file text", "text/plain"),
        ]
    )
    ctype = "multipart/form-data; boundary=XyZ123" if declared else None
    out = redact_body_text(body, ctype)
    assert "hunter2" not in out and "k-1" not in out and "token=abc" not in out
    assert out == multipart(
        [
            ("user", "bob", None),
            ("password", REDACTED, None),
            ("meta", '{"api_key":"[REDACTED]","n":1}', JSON_TYPE),
            ("note", f"see https://x/?token={REDACTED}", "text/plain"),
            ("file", "plain file text", "text/plain"),
        ]
    )


def test_multipart_cut_inside_a_secret_part() -> None:
    full = multipart([("a", "1", None), ("pin", "123456", None)])
    body = full[: full.index("123456") + 4]
    out = redact_body_text(body, "multipart/form-data; boundary=XyZ123")
    assert "1234" not in out and out.endswith(REDACTED)


def test_multipart_with_a_binary_file_is_redacted_in_recordings() -> None:
    head = b'--b1\r\nContent-Disposition: form-data; name="'
    body = (
        head + b'avatar"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\x00\xff\r\n'
        + head + b'password"\r\n\r\nhunter2\r\n--b1--\r\n'
    )  # fmt: skip
    headers = (("Content-Type", "multipart/form-data; boundary=b1"),)
    _, new = redact_body(headers, body)
    assert b"hunter2" not in new
    assert b"\x89PNG\x00\xff" in new  # the file's bytes are kept as they were


# --- other text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Authorization: Bearer abc.def.ghi\nHost: x", "abc.def.ghi"),
        ("db:\n  host: x\n  password: hunter2\n", "hunter2"),
        ("<req><wsse:Password>pw-1</wsse:Password><n>1</n></req>", "pw-1"),
        ('log {"password": "p1", "x": 1} end', "p1"),
        ("API_KEY=k-1\nDEBUG=1", "k-1"),
    ],
)
def test_other_text(text: str, gone: str) -> None:
    out = redact_body_text(text, "text/plain")
    assert gone not in out and REDACTED in out


def test_prose_is_left_alone() -> None:
    text = "The author pinned a note: the session ended.\nCount: 3"
    assert redact_body_text(text, "text/plain") == text


# --- headers ------------------------------------------------------------------------------


def test_headers_by_name_and_urls_in_values() -> None:
    out = DEFAULT.headers(
        [
            ("X-Forwarded-Authorization", "Bearer a"),
            ("Authentication", "b"),
            ("X-Access-Key", "c"),
            ("X-Amz-Credential", "d"),
            ("Location", "https://app/cb?code=abc&state=1"),
            ("Referer", "https://app/page?session_id=s1"),
            ("Content-Type", "multipart/form-data; boundary=kept"),
            ("Cache-Control", "max-age=0"),
        ]
    )
    assert out == (
        ("X-Forwarded-Authorization", REDACTED),
        ("Authentication", REDACTED),
        ("X-Access-Key", REDACTED),
        ("X-Amz-Credential", REDACTED),
        ("Location", f"https://app/cb?code={REDACTED}&state=1"),
        ("Referer", f"https://app/page?session_id={REDACTED}"),
        ("Content-Type", "multipart/form-data; boundary=kept"),
        ("Cache-Control", "max-age=0"),
    )


# --- paths --------------------------------------------------------------------------------

RANDOM_TOKENS = [
    "aB3dE5fG7hJ9kL1mN3pQ5rS7tU",
    "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "x7Kq_2mWz9Lr-4Tb8Vn1Yc6Hd3Jf",
]
KEPT_SEGMENTS = [
    "123456789012345678901234567890",  # numeric id
    "550e8400-e29b-41d4-a716-446655440000",  # UUID
    "550E8400-E29B-41D4-A716-446655440000",
    "550e8400e29b41d4a716446655440000",
    "507f1f77bcf86cd799439011",  # MongoDB ObjectId
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # SHA-1
    "How-To-Configure-OAuth2-In-10-Steps",  # a slug
    "OrderSummaryForCustomer2024Q1",
    "2024-05-02T09:25:00.000Z-report",
    "aB3dE5fG7hJ9kL1mN3pQ5rS",  # 23 characters: too short
    "abcdefghijklmnopqrstuvwxyz0123456789",  # one letter case
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAaaa1",  # low entropy
]


@pytest.mark.parametrize("segment", RANDOM_TOKENS)
def test_random_segments_are_redacted(segment: str) -> None:
    assert looks_random(segment)
    assert DEFAULT.path(f"/api/reset/{segment}/confirm") == f"/api/reset/{REDACTED}/confirm"


@pytest.mark.parametrize("segment", KEPT_SEGMENTS)
def test_ids_and_words_are_kept(segment: str) -> None:
    assert not looks_random(segment)
    assert DEFAULT.path(f"/api/items/{segment}") == f"/api/items/{segment}"


def test_configured_path_patterns() -> None:
    r = Redactor(paths=[r"^/reset/([^/]+)", r"/hooks/[0-9a-f]{32}", r"/k/(\w+)-(\w+)"])
    assert r.path("/reset/lowercase-token/x") == f"/reset/{REDACTED}/x"
    assert r.path("/api/hooks/" + "0a" * 16 + "/run") == f"/api{REDACTED}/run"
    assert r.path("/k/ab-cd") == f"/k/{REDACTED}-{REDACTED}"
    assert r.path("/other/reset/x") == "/other/reset/x"


def test_path_parameters() -> None:
    assert DEFAULT.path("/app;jsessionid=ABC123/page;v=2") == f"/app;jsessionid={REDACTED}/page;v=2"


def test_random_segments_can_be_turned_off() -> None:
    r = redactor_for(RedactSettings(random_segments=False))
    assert r.path(f"/t/{RANDOM_TOKENS[0]}") == f"/t/{RANDOM_TOKENS[0]}"


# --- through the real row builder, recorder and curl -------------------------------------

TOKEN = RANDOM_TOKENS[0]


def _exchange(path: str = f"/api/reset/{TOKEN}") -> Exchange:
    req = Request(
        "POST",
        path,
        "page=1&refresh_token=qs-refresh",
        (("Content-Type", FORM_TYPE), ("X-Forwarded-Authorization", "Bearer fwd-auth")),
        b"user=bob&x=1\npin=991122",
    )
    body = {"user": {"credentials": ["cred-1"], "session": {"id": "sess-1"}},
            "next": "https://h/?access_token=url-token"}  # fmt: skip
    primary = BackendResponse(
        Payload(200, (("Content-Type", JSON_TYPE),), json.dumps(body).encode()), 5.0
    )
    candidate = BackendResponse(
        Payload(200, (("Content-Type", JSON_TYPE), ("X-Access-Key", "cand-key")), b'{"n": 1}'), 6.0
    )
    return Exchange(
        "ex-1", req, primary, candidate, "POST /api/reset/{id}", 1_700_000_000.0,
        secondary=None,
    )  # fmt: skip


SECRETS = ["qs-refresh", "fwd-auth", "991122", "cred-1", "sess-1", "url-token", "cand-key", TOKEN]


def test_exchange_row_has_no_secret_and_keeps_the_endpoint() -> None:
    ex = _exchange()
    row = dict(
        zip(EXCHANGE_COLUMNS, exchange_row(ex, Comparison(Verdict.DIFFER), "r"), strict=True)
    )
    text = json.dumps(row, default=str)
    for secret in SECRETS:
        assert secret not in text, secret
    assert row["path"] == f"/api/reset/{REDACTED}"
    assert row["endpoint"] == "POST /api/reset/{id}"  # grouped from the raw path, unchanged
    assert row["request_body"] == f"user=bob&x=1\npin={REDACTED}"
    assert json.loads(row["primary_body"])["user"] == {"credentials": REDACTED, "session": REDACTED}


def test_exchange_row_uses_the_given_redactor() -> None:
    r = Redactor(keys=["user"], random_segments=False)
    row = dict(zip(EXCHANGE_COLUMNS, exchange_row(_exchange(), Comparison(Verdict.DIFFER), "r",
                                                   redactor=r), strict=True))  # fmt: skip
    assert row["path"] == f"/api/reset/{TOKEN}"
    assert json.loads(row["primary_body"])["user"] == REDACTED


def test_difference_values_are_redacted() -> None:
    cmp = Comparison(
        Verdict.DIFFER,
        (
            Difference("$.user", Kind.VALUE_CHANGED, {"session": {"id": "sess-1"}, "n": 1}, None),
            Difference("$.next", Kind.VALUE_CHANGED, "https://h/?access_token=url-token", "x"),
            Difference("$header.location", Kind.HEADER, "https://h/?code=c0de", None),
            Difference("$.refresh", Kind.REMOVED, "r-1", None),
        ),
    )
    rows = difference_rows(_exchange(), cmp, "r")
    text = repr(rows)
    for secret in ("sess-1", "url-token", "c0de", "r-1"):
        assert secret not in text
    assert json.loads(rows[0][5]) == {"session": REDACTED, "n": 1}


@pytest.mark.parametrize("ext", ["jsonl", "har", "mitm"])
def test_recording_has_no_secret(ext: str, tmp_path: Path) -> None:
    path = str(tmp_path / f"rec.{ext}")
    ex = _exchange()
    rec = RedactingRecorder(open_recorder(path), "http://primary.test", RedactSettings())
    assert ex.primary.payload is not None
    rec.add(ex.request, ex.primary.payload, ex.started_at, 5.0)
    rec.close()
    raw = Path(path).read_bytes()
    for secret in SECRETS[:-2]:
        assert secret.encode() not in raw, secret
    assert TOKEN.encode() not in raw
    (entry,) = list(read_traffic(path))
    assert entry.request.path == f"/api/reset/{REDACTED}"


def test_recorder_takes_settings_or_a_redactor(tmp_path: Path) -> None:
    settings = RedactSettings(keys=("user",))
    mine = Redactor(keys=["user"])
    for redact, expected in [(None, DEFAULT), (settings, redactor_for(settings)), (mine, mine)]:
        recorder = RedactingRecorder(open_recorder(str(tmp_path / "r.jsonl")), "http://x", redact)
        assert recorder.redactor is expected
        recorder.close()


def test_curl_shows_stored_values_and_hides_a_url_password() -> None:
    row = dict(zip(EXCHANGE_COLUMNS, exchange_row(_exchange(), Comparison(Verdict.DIFFER), "r"),
                   strict=True))  # fmt: skip
    headers = json.loads(row["request_headers"])
    cmd = curl_command("http://u:pw-1@p.test", "P", "POST", row["path"], row["query"], headers,
                       row["request_body"])  # fmt: skip
    for secret in [*SECRETS, "pw-1"]:
        assert secret not in cmd
    assert "http://u:[REDACTED]@p.test/api/reset/[REDACTED]?page=1" in cmd


@pytest.mark.parametrize(
    "text",
    [
        '{"text": "' + 'He said \\"stop\\" ' * 4000 + '"}',  # escaped quotes (quadratic before)
        '{"a":"' + '\\"' * 60000,  # the same, cut by the body cap
        "?a=%2541" * 2000,  # percent-encoded pairs (searched again and again before)
        "://@ " + "a." * 60000,  # a long dotted run after a scheme separator
        "eyJ-" * 30000,  # many JWT starts in one run
    ],
)
def test_crafted_text_costs_one_pass_not_a_quadratic_one(text: str) -> None:
    # Each of these took from seconds to minutes at a third of this size before; in one
    # pass they take milliseconds. The bound only catches a return of the blow-up.
    import time

    start = time.process_time()
    DEFAULT.text(text)
    body_for_review((("content-type", "application/json"),), text.encode(), 1 << 20)
    assert time.process_time() - start < 5.0
