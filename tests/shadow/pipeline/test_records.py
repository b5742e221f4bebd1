"""shadow.pipeline.records: store rows, secrets redacted, bodies decoded and capped."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import datetime
from typing import Any

from comparators import Comparison, Difference, Kind, Payload, Verdict
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.records import body_for_review, difference_rows, exchange_row
from shadow.pipeline.redact import REDACTED
from shadow.store.schema import DIFFERENCE_COLUMNS, EXCHANGE_COLUMNS

JSON = (("content-type", "application/json"),)


def exchange(
    *,
    request: Request | None = None,
    primary: BackendResponse | None = None,
    candidate: BackendResponse | None = None,
    skip_reason: str | None = None,
) -> Exchange:
    return Exchange(
        id="ex-1",
        request=request or Request("GET", "/api/analysis/3", "a=1", (("accept", "*/*"),)),
        primary=primary or BackendResponse(Payload(200, JSON, b'{"x": 1}'), elapsed_ms=12.5),
        candidate=candidate,
        endpoint="GET /api/analysis/{id}",
        started_at=1_700_000_000.25,
        source="proxy",
        skip_reason=skip_reason,
    )


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    assert len(row) == len(EXCHANGE_COLUMNS)
    return dict(zip(EXCHANGE_COLUMNS, row, strict=True))


def test_exchange_row_columns_in_place() -> None:
    ex = exchange(
        candidate=BackendResponse(Payload(404, JSON, b'{"x": 2}'), elapsed_ms=30.0),
    )
    cmp = Comparison(
        Verdict.DIFFER,
        (Difference("$status", Kind.STATUS, 200, 404), Difference("$.x", Kind.VALUE_CHANGED, 1, 2)),
        body_kind="json",
        truncated=True,
        notes=("masked 1 timestamp", "sorted $.tags"),
    )
    row = exchange_row(ex, cmp, "run-7")
    assert len(row) == len(EXCHANGE_COLUMNS)
    r = as_dict(row)
    assert r["exchange_id"] == "ex-1"
    assert r["run_id"] == "run-7"
    assert r["ts"] == datetime(2023, 11, 14, 22, 13, 20, 250000)  # UTC, naive
    assert r["source"] == "proxy"
    assert r["method"] == "GET"
    assert r["endpoint"] == "GET /api/analysis/{id}"
    assert r["path"] == "/api/analysis/3"
    assert r["query"] == "a=1"
    assert r["verdict"] == "differ"
    assert r["skip_reason"] is None
    assert (r["primary_status"], r["candidate_status"]) == (200, 404)
    assert (r["primary_ms"], r["candidate_ms"]) == (12.5, 30.0)
    assert (r["primary_error"], r["candidate_error"]) == (None, None)
    assert r["diff_count"] == 2
    assert r["diffs_truncated"] is True
    assert r["body_kind"] == "json"
    assert r["notes"] == "masked 1 timestamp; sorted $.tags"
    assert json.loads(r["request_headers"]) == [["accept", "*/*"]]
    assert (r["request_body"], r["request_body_truncated"]) == (None, False)
    assert json.loads(r["primary_headers"]) == [["content-type", "application/json"]]
    assert r["primary_body"] == '{"x": 1}'
    assert r["primary_body_truncated"] is False
    assert r["candidate_body"] == '{"x": 2}'


def test_exchange_row_skipped_and_errors() -> None:
    skipped = as_dict(
        exchange_row(
            exchange(request=Request("POST", "/p"), skip_reason="POST is not copied"),
            Comparison(Verdict.SKIPPED),
            "r",
        )
    )
    assert skipped["verdict"] == "skipped"
    assert skipped["skip_reason"] == "POST is not copied"
    assert skipped["query"] is None
    assert skipped["candidate_status"] is None
    assert skipped["candidate_ms"] is None
    assert skipped["candidate_headers"] is skipped["candidate_body"] is None
    assert skipped["notes"] is None

    failed = as_dict(
        exchange_row(
            exchange(
                primary=BackendResponse.failed("connection reset"),
                candidate=BackendResponse.failed("timeout after 5000 ms", 5000.0),
            ),
            Comparison(Verdict.PRIMARY_ERROR),
            "r",
        )
    )
    assert failed["verdict"] == "primary_error"
    assert failed["primary_error"] == "connection reset"
    assert failed["primary_status"] is None
    assert failed["candidate_error"] == "timeout after 5000 ms"
    assert failed["candidate_ms"] == 5000.0
    assert failed["primary_body"] is None


def test_secrets_redacted_in_stored_headers_query_and_bodies() -> None:
    req = Request(
        "POST",
        "/login",
        "user=bob&token=qs-secret",
        (
            ("Authorization", "Bearer auth-secret"),
            ("Cookie", "session=cookie-secret"),
            ("X-Api-Key", "key-secret"),
            ("Content-Type", "application/json"),
        ),
        b'{"user": "bob", "password": "body-secret"}',
    )
    primary = BackendResponse(
        Payload(
            200,
            (*JSON, ("Set-Cookie", "sid=set-cookie-secret; HttpOnly"), ("X-Trace", "keep-me")),
            b'{"token": "resp-secret", "ok": true}',
        )
    )
    candidate = BackendResponse(
        Payload(200, (*JSON, ("x-auth-token", "cand-secret")), b'{"api_key": "cand-body-secret"}')
    )
    row = exchange_row(
        exchange(request=req, primary=primary, candidate=candidate),
        Comparison(Verdict.DIFFER),
        "r",
    )
    text = json.dumps([str(v) for v in row])
    for secret in (
        "qs-secret",
        "auth-secret",
        "cookie-secret",
        "key-secret",
        "body-secret",
        "set-cookie-secret",
        "resp-secret",
        "cand-secret",
        "cand-body-secret",
    ):
        assert secret not in text
    r = as_dict(row)
    assert r["query"] == f"user=bob&token={REDACTED}"
    assert dict(json.loads(r["request_headers"]))["Authorization"] == REDACTED
    assert dict(json.loads(r["request_headers"]))["Content-Type"] == "application/json"
    primary_headers = dict(json.loads(r["primary_headers"]))
    assert primary_headers["Set-Cookie"] == REDACTED
    assert primary_headers["X-Trace"] == "keep-me"
    assert json.loads(r["request_body"]) == {"user": "bob", "password": REDACTED}
    assert json.loads(r["primary_body"]) == {"token": REDACTED, "ok": True}


def test_gzip_body_is_stored_decoded() -> None:
    body = json.dumps({"items": list(range(50))}).encode()
    headers = (*JSON, ("content-encoding", "gzip"))
    primary = BackendResponse(Payload(200, headers, gzip.compress(body)))
    r = as_dict(exchange_row(exchange(primary=primary), Comparison(Verdict.SKIPPED), "r"))
    assert r["primary_body"] == body.decode()
    assert r["primary_body_truncated"] is False


def test_body_cap_truncates_and_flags() -> None:
    body = b'{"data": "' + b"x" * 500 + b'"}'
    primary = BackendResponse(Payload(200, JSON, body))
    r = as_dict(exchange_row(exchange(primary=primary), Comparison(Verdict.SKIPPED), "r", 100))
    assert r["primary_body_truncated"] is True
    assert r["primary_body"] == body[:100].decode()
    r = as_dict(exchange_row(exchange(primary=primary), Comparison(Verdict.SKIPPED), "r", 512))
    assert r["primary_body_truncated"] is False
    assert r["primary_body"] == body.decode()


def test_body_cap_applies_to_decoded_size() -> None:
    body = b"a" * 1000
    headers = (("content-type", "text/plain"), ("content-encoding", "gzip"))
    text, cut = body_for_review(headers, gzip.compress(body), 200)
    assert cut is True
    assert text == "a" * 200


def test_binary_and_undecodable_bodies() -> None:
    text, cut = body_for_review((("content-type", "image/png"),), b"\x89PNG\r\n" + bytes(100), 64)
    assert text == "<64 bytes of binary data>"
    assert cut is True
    # claims gzip but is not: kept as raw bytes rather than raising
    text, cut = body_for_review(
        (("content-type", "text/plain"), ("content-encoding", "gzip")), b"plain", 64
    )
    assert text == "plain"
    assert cut is False
    assert body_for_review(JSON, b"", 64) == (None, False)


def test_secret_cut_by_body_cap_is_still_redacted() -> None:
    body = b'{"user": "bob", "password": "hunter2-very-secret"}'
    text, cut = body_for_review(JSON, body, 38)
    assert cut is True
    assert text is not None
    assert "hunter2" not in text


def test_difference_rows_json_values() -> None:
    ex = exchange()
    cmp = Comparison(
        Verdict.DIFFER,
        (
            Difference(
                "$.createdAt",
                Kind.VALUE_CHANGED,
                "2024-05-02T09:25:00.000Z",
                "2024-05-02T09:25:00Z",
            ),
            Difference("$.cost", Kind.TYPE_CHANGED, 1.05, "1.05"),
            Difference("$.completedAt", Kind.ADDED, None, None),
            Difference("$.tags", Kind.VALUE_CHANGED, ["a", "é"], {"k": [1, None]}),
            Difference("$status", Kind.STATUS, 400, 422),
            Difference("$.user.password", Kind.VALUE_CHANGED, "old-pass", "new-pass"),
            Difference("$header.set-cookie", Kind.HEADER, "sid=abc", "sid=def"),
            Difference("$header.content-type", Kind.HEADER, "application/json", None),
            Difference("$body", Kind.VALUE_CHANGED, "token=abc", "token=def"),
        ),
    )
    out = difference_rows(ex, cmp, "run-9")
    assert all(len(r) == len(DIFFERENCE_COLUMNS) for r in out)
    by_path = {r[3]: dict(zip(DIFFERENCE_COLUMNS, r, strict=True)) for r in out}
    assert len(by_path) == 9
    first = by_path["$.createdAt"]
    assert (first["exchange_id"], first["run_id"], first["endpoint"]) == (
        "ex-1",
        "run-9",
        "GET /api/analysis/{id}",
    )
    assert first["kind"] == "value_changed"
    assert first["primary_value"] == '"2024-05-02T09:25:00.000Z"'
    assert first["candidate_value"] == '"2024-05-02T09:25:00Z"'
    assert (by_path["$.cost"]["primary_value"], by_path["$.cost"]["candidate_value"]) == (
        "1.05",
        '"1.05"',
    )
    assert by_path["$.completedAt"]["primary_value"] == "null"
    assert json.loads(by_path["$.tags"]["primary_value"]) == ["a", "é"]
    assert "é" in by_path["$.tags"]["primary_value"]  # not \u-escaped
    assert json.loads(by_path["$.tags"]["candidate_value"]) == {"k": [1, None]}
    assert (by_path["$status"]["primary_value"], by_path["$status"]["candidate_value"]) == (
        "400",
        "422",
    )
    secret = by_path["$.user.password"]
    assert (secret["primary_value"], secret["candidate_value"]) == (f'"{REDACTED}"',) * 2
    cookie = by_path["$header.set-cookie"]
    assert (cookie["primary_value"], cookie["candidate_value"]) == (f'"{REDACTED}"',) * 2
    ctype = by_path["$header.content-type"]
    assert (ctype["primary_value"], ctype["candidate_value"]) == ('"application/json"', "null")
    body = by_path["$body"]
    assert "abc" not in body["primary_value"] and "def" not in body["candidate_value"]


def test_difference_rows_empty_for_match() -> None:
    assert difference_rows(exchange(), Comparison(Verdict.MATCH), "r") == []


def test_credentials_below_a_difference_path_are_redacted() -> None:
    """A removed object or list is stored whole: its credential members must not be."""
    from comparators import Comparison, Difference, Kind, Verdict

    ex = _exchange_for_secrets()
    cmp = Comparison(
        Verdict.DIFFER,
        (
            Difference("$.user.profile", Kind.REMOVED, {"access_token": "LEAK1", "n": 1}, None),
            Difference("$.tokens[0]", Kind.VALUE_CHANGED, "LEAK2", "LEAK3"),
        ),
    )
    rows = difference_rows(ex, cmp, "r")
    text = repr(rows)
    assert "LEAK" not in text
    assert '"n": 1' in rows[0][5]  # the rest of the object is kept


def _exchange_for_secrets() -> Any:
    from shadow.model import BackendResponse, Exchange, Request

    return Exchange(
        id="s",
        request=Request("GET", "/u"),
        primary=BackendResponse(Payload(200)),
        candidate=BackendResponse(Payload(200)),
        endpoint="GET /u",
        started_at=0.0,
    )


def test_bytes_that_are_not_utf8_are_escaped_and_the_row_says_so(tmp_path: Any) -> None:
    """A path with raw bytes \\xff\\xfe (kept by mitmproxy as surrogates) is stored, escaped."""
    from comparators import compare
    from shadow.pipeline.records import ESCAPED_NOTE, difference_rows, storable
    from shadow.store.writer import Run, StoreWriter, open_for_reading

    raw_path = b"/api/\xff\xfe/x".decode("utf-8", "surrogateescape")
    ex = exchange(
        request=Request("GET", raw_path, "q=\udcff", ()),
        candidate=BackendResponse(Payload(200, JSON, b'{"x": 2}'), elapsed_ms=1.0),
    )
    ex = dataclasses.replace(ex, endpoint=f"GET {raw_path}")
    cmp = compare(ex.primary.payload, ex.candidate.payload)  # type: ignore[union-attr,arg-type]
    row = exchange_row(ex, cmp, "r")
    assert row.path == "/api/\\xff\\xfe/x" and row.query == "q=\\xff"
    assert row.endpoint == "GET /api/\\xff\\xfe/x"
    assert ESCAPED_NOTE in (row.notes or "")
    assert storable("plain") == "plain" and storable("é") == "é"
    assert storable("\ud800") == "\\ud800"  # a surrogate standing for no byte
    db = tmp_path / "u.duckdb"
    writer = StoreWriter(str(db))
    writer.run_changed(Run("r", "proxy", 0.0))
    diffs = difference_rows(ex, cmp, "r")
    assert [d.endpoint for d in diffs] == ["GET /api/\\xff\\xfe/x"]
    writer.add(row, diffs)
    assert writer.flush() == 1
    con = open_for_reading(str(db))
    try:
        assert con.execute("SELECT path FROM exchanges").fetchone() == ("/api/\\xff\\xfe/x",)
    finally:
        con.close()


def test_review_text_of_a_bomb_is_its_start_without_decoding_it_all() -> None:
    import tracemalloc

    body = b'{"a": "' + b"x" * (64 << 20) + b'"}'  # 64 MiB, a few tens of KB gzipped
    bomb = gzip.compress(body)
    del body
    headers = (("content-type", "application/json"), ("content-encoding", "gzip"))
    tracemalloc.start()
    try:
        text, cut = body_for_review(headers, bomb, 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cut and text is not None and text.startswith('{"a": "xxx') and len(text) <= 1000
    assert peak < 1 << 20  # decoded as far as the kept 1,000 bytes, not to the 16 MiB limit


def test_review_text_of_a_cut_body_says_how_it_was_compared() -> None:
    from shadow.model import capped_payload
    from shadow.pipeline.records import _side
    from shadow.pipeline.redact import DEFAULT

    answer = BackendResponse(capped_payload(200, (), b"z" * 5000, 100))
    _, text, cut = _side(answer, 64, DEFAULT)
    assert cut is True
    assert text == "<5000 bytes, over the body limit: compared by length and SHA-256>"
