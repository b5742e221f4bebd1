"""Redaction of secrets before anything is stored, recorded or reported."""

from __future__ import annotations

import re
from collections.abc import Iterable

from comparators.model import Headers

REDACTED = "[REDACTED]"

# Header names whose values are secrets. Matched case-insensitively; the regex
# catches vendor variants such as X-Api-Key, X-Auth-Token, X-Amz-Security-Token.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
_SECRET_HEADER_RE = re.compile(r"(api[-_]?key|token|secret|password|session|signature)", re.I)

# Words that make a key, a field or a query parameter a credential, anywhere in its
# name (access_token, X-Amz-Signature, sessionId, client_secret). Over-redacting a
# harmless field only hides its value from reviewers; under-redacting leaks.
_SECRET_WORDS = (
    r"password|passwd|secret|token|api[-_]?key|apikey|authorization|credential"
    r"|private[-_]?key|signature|jwt|session[-_]?id|sessionid|cookie"
)
_SECRET_NAME = r"[^&=\"]*(?:" + _SECRET_WORDS + r")[^&=\"]*"

# Query parameters that carry credentials (and OAuth's `code`, `sig`, `key`).
_SECRET_QUERY_RE = re.compile(r"(?i)(^|&)((?:" + _SECRET_NAME + r"|code|sig|key|auth)=)[^&]*")


def is_secret_header(name: str) -> bool:
    lname = name.lower()
    return lname in SECRET_HEADERS or bool(_SECRET_HEADER_RE.search(lname))


def redact_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """Headers with every secret value replaced by REDACTED (names kept)."""
    return tuple((k, REDACTED if is_secret_header(k) else v) for k, v in headers)


def redact_query(query: str) -> str:
    """Query string with credential-like parameter values replaced."""
    return _SECRET_QUERY_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", query)


# JSON members and form fields whose values are credentials, wherever they appear in a body.
_SECRET_KEY = _SECRET_NAME
# A string (possibly cut off by the body cap), a number or a literal.
_JSON_SECRET_RE = re.compile(
    r'("' + _SECRET_KEY + r'"\s*:\s*)(?:"(?:[^"\\]|\\.)*(?:"|$)|-?[\d.eE+-]+|true|false)', re.I
)
_FORM_SECRET_RE = re.compile(r"(?i)(^|&)(" + _SECRET_KEY + r"=)[^&]*")


def redact_body_text(text: str) -> str:
    """Body text with credential-like JSON members and form fields replaced."""
    text = _JSON_SECRET_RE.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    return _FORM_SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def is_secret_path(path: str) -> bool:
    """True when any key on a difference path is credential-like ($.user.token[0].x)."""
    keys = [k for k in re.split(r"[.\[\]\"']+", path) if k and not k.lstrip("-").isdigit()]
    return any(re.search(_SECRET_WORDS, k, re.I) for k in keys[1:] or keys)
