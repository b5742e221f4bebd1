"""Recording what passed through the proxy, secrets redacted, ready for replay.

The worker process records (not the proxy), from the same records it compares:
`.har` → HAR 1.2, `.jsonl` → shadow's JSON Lines, anything else → a mitmproxy
flow dump (`mitmproxy -r`, `shadow replay`).
"""

from __future__ import annotations

import codecs
import logging
import os
import time

from comparators import DecodeError, body_text, decode_body
from comparators.decode import charset, media_type
from comparators.model import Headers, Payload, first_header
from shadow.config.loader import RedactSettings
from shadow.errors import ConfigError, ShadowError
from shadow.model import Request
from shadow.pipeline.records import conversation_for_review
from shadow.pipeline.redact import DEFAULT, Redactor, redactor_for
from shadow.sources.write import HarWriter, JsonlWriter, MitmWriter
from shadow.sources.write import TrafficWriter as Recorder

log = logging.getLogger("shadow")


def check_record_path(path: str) -> None:
    """Fail at start, not at the first flow, when `path` cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot record to {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"cannot record to {path}: it is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot record to {path}: the file is not writable")
    if not os.path.exists(path) and not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot record to {path}: directory {parent} is not writable")


def open_recorder(path: str) -> Recorder:
    """A recorder for `path`, chosen by its extension."""
    kind = {".har": HarWriter, ".jsonl": JsonlWriter}.get(os.path.splitext(path)[1], MitmWriter)
    try:
        return kind(path)
    except ShadowError as exc:  # the writers' own "cannot write"
        raise ConfigError(f"cannot record to {path}: {exc}") from None


def _set_length(headers: Headers, length: int) -> Headers:
    return tuple((k, str(length)) if k.lower() == "content-length" else (k, v) for k, v in headers)


# Bodies split into fields even when not text: a multipart upload holds binary files
# beside its password field; a form may be in a legacy charset.
_FIELD_TYPES = ("multipart/", "application/x-www-form-urlencoded")


def redact_body(
    headers: Headers, body: bytes, redactor: Redactor = DEFAULT
) -> tuple[Headers, bytes]:
    """Headers and body with the secrets of a text body redacted (as in the store).

    A body that needs no change is kept byte for byte. A content-encoded body
    that does is written decoded, without its Content-Encoding; Content-Length
    follows the new body. Bodies that do not decode or are binary are kept,
    except multipart and form bodies, whose fields are redacted byte for byte.
    """
    if not body:
        return headers, body
    try:
        decoded = decode_body(headers, body)
    except DecodeError:
        return headers, body
    text = body_text(headers, decoded)
    encoding = charset(headers) or "utf-8"
    if text is None:
        if not media_type(headers).startswith(_FIELD_TYPES):
            return headers, body
        text, encoding = decoded.decode("latin-1"), "latin-1"  # every byte kept as it was
    safe = redactor.body_text(text, first_header(headers, "content-type"))
    if safe == text:
        return headers, body
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    new = safe.encode(encoding, "replace")
    if decoded != body:  # it was content-encoded: now written decoded
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-encoding")
    return _set_length(headers, len(new)), new


class RedactingRecorder:
    """Redacts secrets before they reach the file, so recordings are safe to share.

    Secret headers (Authorization, Cookie, Set-Cookie, API keys, ...), query
    parameters, path segments and body fields become [REDACTED], exactly as in
    the store; `redact` is the config's `[redact]` settings (or a Redactor).
    A recording that cannot be written (disk full) is given up with one logged
    error: the comparison goes on without it.
    """

    def __init__(
        self, inner: Recorder, base_url: str, redact: Redactor | RedactSettings | None = None
    ) -> None:
        self.inner = inner
        self.base_url = base_url.rstrip("/")
        self.redactor = redactor_for(redact)
        self.failed: str | None = None
        self.count = 0

    def add(self, request: Request, response: Payload | None, started_at: float | None,
            elapsed_ms: float | None) -> None:  # fmt: skip
        if self.failed is not None:
            return
        r = self.redactor
        req_headers, req_body = redact_body(r.headers(request.headers), request.body, r)
        safe_req = Request(
            request.method, r.path(request.path), r.query(request.query), req_headers, req_body
        )
        safe_resp = None
        if response is not None:
            if response.stream:
                # A conversation: each message redacted, the whole kept (not cut).
                resp_headers = r.headers(response.headers)
                cap = len(response.body) * 4 + 1
                text, _ = conversation_for_review(response.body, cap, r, keep_binary=True)
                resp_body = (text or "").encode("utf-8")
            else:
                resp_headers, resp_body = redact_body(r.headers(response.headers), response.body, r)
            safe_resp = Payload(response.status, resp_headers, resp_body, stream=response.stream)
        url = self.base_url + safe_req.target
        try:
            self.inner.add(safe_req, safe_resp, started_at or time.time(), elapsed_ms, url)
        except (OSError, ValueError) as exc:
            self.failed = str(exc)
            log.error("shadow: recording stopped after %d exchanges: %s", self.count, exc)
            return
        self.count += 1

    def close(self) -> None:
        try:
            self.inner.close()
        except OSError as exc:
            log.error("shadow: could not finish the recording: %s", exc)


__all__ = ["Recorder", "RedactingRecorder", "check_record_path", "open_recorder", "redact_body"]
