"""Redaction of secrets before anything is stored, recorded or shown.

What is a secret is decided by *name* and found by *structure*:

- headers, JSON keys, form fields, multipart parts and query parameters whose
  name is on the deny-list (`NameList`: word parts such as `token`, `session`,
  `pin`, pairs such as `api key`, plus the names of the config's `[redact]`);
- everything under such a name: a string, a number, a WHOLE object or list;
- secrets recognised by shape in any string: credential parameters of URLs and
  query strings (percent-encoded ones too), the password of `scheme://user:pw@`,
  JSON Web Tokens, `Bearer` tokens, JSON embedded in a string; and path
  segments that look like long random tokens (`looks_random`) or match a
  configured pattern.

Bodies are parsed: JSON is walked iteratively (depth-capped), forms and
multipart are split into fields. JSON that does not parse (cut by the body cap,
JSON Lines) is scanned in place; other text goes through regexes (JSON
fragments, `Name: value` lines, XML elements, the shapes above).

`DEFAULT` is the built-in `Redactor`; `redactor_for` builds one from a config's
`RedactSettings`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from functools import lru_cache
from itertools import pairwise
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus

import orjson

from comparators.model import Headers
from shadow.config.loader import RedactSettings

REDACTED = "[REDACTED]"
_QUOTED = f'"{REDACTED}"'

# Header names secret in any case (the word rules below find them too; the list is
# public, for readers who want the obvious ones by name).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        # Browsers cannot set headers on a WebSocket: tokens travel as a "subprotocol".
        "sec-websocket-protocol",
    }
)

# --- names -------------------------------------------------------------------------------

# A name is cut into word parts: `X-Refresh-Token` -> x refresh token, `sessionId` ->
# session id, `APIKey` -> api key. Matching whole parts (not substrings) keeps `author`,
# `authority` and `pinned` apart from `auth` and `pin`.
_PART_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Any part equal to one of these (a plural `s` ignored) makes the name secret.
_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "pw", "pass", "passphrase", "passcode", "secret",
        "token", "auth", "authn", "authz", "authorization", "authentication", "credential",
        "cred", "creds", "cookie", "session", "sessid", "sid", "jwt", "bearer", "otp", "totp",
        "hotp", "pin", "ssn", "cvv", "cvc", "cvn", "iban", "signature", "sig", "hmac", "apikey",
        "csrf", "xsrf", "dpop", "saml", "assertion", "verifier",
    }
)  # fmt: skip
# Inside any part, for names written as one word: accesstoken, PHPSESSID, csrfmiddlewaretoken.
_FRAGMENTS = (
    "password", "passwd", "passphrase", "passcode", "secret", "token", "credential", "apikey",
    "privatekey", "accesskey", "secretkey", "sessionid", "sessid", "cookie", "signature", "jwt",
    "authorization", "bearer",
)  # fmt: skip
# Ordinary words that contain a fragment (taken out before fragments are looked for).
_ORDINARY_RE = re.compile(r"secretar(?:y|ies|iat)|tokeni[sz](?:e|er|ers|ed|ing|ation)")
# Two consecutive parts that make a secret together (`public key`, `key`, `code` alone do not).
_PAIRS = frozenset(
    {
        ("api", "key"), ("private", "key"), ("access", "key"), ("signing", "key"),
        ("encryption", "key"), ("master", "key"), ("license", "key"), ("subscription", "key"),
        ("account", "key"), ("application", "key"), ("app", "key"), ("recovery", "key"),
        ("access", "code"), ("device", "code"), ("verification", "code"), ("recovery", "code"),
        ("reset", "code"), ("backup", "code"), ("security", "code"), ("sms", "code"),
        ("mfa", "code"), ("card", "number"), ("credit", "card"), ("cc", "number"),
        ("account", "number"), ("social", "security"), ("security", "answer"),
    }
)  # fmt: skip
# Secret only as the whole name: djangorestframework-simplejwt answers {"access", "refresh"}.
_WHOLE = frozenset({"access", "refresh", "dpop"})  # (DPoP's parts are d, po, p)
# And for query parameters and form fields: OAuth's `code`, Google's `key`, CAS's `ticket`.
_PARAM_WHOLE = frozenset({"code", "key", "ticket"})
_FRAGMENT_RE = re.compile("|".join(_FRAGMENTS))
_LOWER_PART_RE = re.compile("[a-z]+|[0-9]+")
_MEMO_SIZE = 16384  # decisions remembered per list (names come from traffic: unbounded)


def name_parts(name: str) -> tuple[str, ...]:
    """The lower-cased word parts of a name: `X-Refresh-Token` -> ("x", "refresh", "token")."""
    return tuple(p.lower() for p in _PART_RE.findall(name))


def _contains(parts: tuple[str, ...], seq: tuple[str, ...]) -> bool:
    n = len(seq)
    return any(parts[i : i + n] == seq for i in range(len(parts) - n + 1))


class NameList:
    """A deny-list of names matched case-insensitively by word parts.

    The built-in words, fragments and pairs above, plus `extra` names (each a
    sequence of word parts that must appear in a row: "tenant_ref" matches
    `X-Tenant-Ref`, `tenantRefs`) and `whole` names (secret only as the whole name).
    """

    def __init__(self, extra: Iterable[str] = (), whole: Iterable[str] = ()) -> None:
        self._extra = tuple(seq for seq in map(name_parts, extra) if seq)
        self._whole = frozenset("".join(name_parts(n)) for n in (*_WHOLE, *whole))
        # Decisions so far, as sets: a JSON object's keys are checked with set operations.
        self._secret: set[str] = set()
        self._safe: set[str] = set()

    def __call__(self, name: str) -> bool:
        if name in self._safe:
            return False
        return name in self._secret or self._decide(name)

    def among(self, names: AbstractSet[str]) -> set[str]:
        """The secret names among `names` (a dict's keys view or a set)."""
        secret = self._secret.intersection(names)
        for name in names - self._safe - secret:
            if self._decide(name):
                secret.add(name)
        return secret

    def _decide(self, name: str) -> bool:
        hit = self._match(name)
        if len(self._secret) + len(self._safe) >= _MEMO_SIZE:
            self._secret.clear()
            self._safe.clear()
        (self._secret if hit else self._safe).add(name)
        return hit

    def _match(self, name: str) -> bool:
        if "%" in name:
            name = unquote(name)
        # Word parts by case (sessionId) and, so that case never hides a name
        # (x-fORWARDED-aUTHORIZATION), the lower-cased name's parts between separators.
        parts = name_parts(name)
        lower = tuple(_LOWER_PART_RE.findall(name.lower()))
        return self._match_parts(parts) or (lower != parts and self._match_parts(lower))

    def _match_parts(self, parts: tuple[str, ...]) -> bool:
        if not parts:
            return False
        if "".join(parts) in self._whole:
            return True
        bases = tuple(p[:-1] if len(p) > 3 and p.endswith("s") else p for p in parts)
        if not _WORDS.isdisjoint(parts) or not _WORDS.isdisjoint(bases):
            return True
        if _FRAGMENT_RE.search(_ORDINARY_RE.sub(" ", " ".join(parts))):
            return True
        for pair in (*pairwise(parts), *zip(parts, bases[1:], strict=False)):
            if pair in _PAIRS:
                return True
        return any(_contains(parts, s) or _contains(bases, s) for s in self._extra)


# --- path segments -----------------------------------------------------------------------

_TOKEN_MIN = 24
_TOKEN_CHARS_RE = re.compile(r"[A-Za-z0-9_.~-]+={0,2}")
_UPPER_RE, _LOWER_RE, _DIGIT_RE = re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]")


def looks_random(segment: str) -> bool:
    """Whether a path segment looks like a long random token (a secret, not an id).

    At least 24 characters of base64url (dots as in JWTs, `=` padding), with
    upper- and lower-case letters and digits; its word parts (letter runs, digit
    runs) 3 characters long or less on average, as in random text, not in words
    ("OrderSummary2024Q1"); and at least 3.5 bits of entropy per character.
    UUIDs, hex ids and hashes (one letter case), numbers and dates never qualify.
    """
    if len(segment) < _TOKEN_MIN or not _TOKEN_CHARS_RE.fullmatch(segment):
        return False
    if not (_UPPER_RE.search(segment) and _LOWER_RE.search(segment) and _DIGIT_RE.search(segment)):
        return False
    parts = _PART_RE.findall(segment)
    if sum(map(len, parts)) > 3 * len(parts):
        return False
    n = len(segment)
    entropy = -sum(c / n * math.log2(c / n) for c in Counter(segment).values())
    return entropy >= 3.5


def _masked(m: re.Match[str]) -> str:
    """A path pattern's match with its groups (or, without groups, all of it) redacted."""
    if m.end() == m.start():
        return ""
    if not m.re.groups:
        return REDACTED
    text, base, out, last = m.group(), m.start(), [], 0
    for g in range(1, m.re.groups + 1):
        start, end = m.span(g)
        if start < 0 or end <= start or start - base < last:
            continue  # did not take part, empty, or inside a group already redacted
        out += [text[last : start - base], REDACTED]
        last = end - base
    out.append(text[last:])
    return "".join(out)


# --- text patterns -----------------------------------------------------------------------

_MAX_DEPTH = 128  # JSON levels walked; deeper containers are replaced whole (never kept raw)
_MAX_NESTED = 4  # documents inside documents: JSON in a string, a URL in a form value, ...

# Tokens of JSON-like text: a string (perhaps cut at the end), a structural character,
# a run of anything else (literals, whitespace), and any stray character.
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[{}\[\]:,]|[^"{}\[\]:,]+|.', re.S)
_LITERAL_RE = re.compile(r"[^\s,}\]]*")
# Skips (possessively: no backtracking) text and the JSON strings `_string` leaves alone
# (no `=`, `/` or `J`, not opening with `{` or `[`), then takes the next other string,
# perhaps cut at the end; matches empty at the end, so a search never rescans.
_SHAPED_STRING_RE = re.compile(
    r'(?:[^"]++|"(?![{\[])(?:[^"\\=/J]++|\\.)*+")*+(?:("(?:[^"\\]|\\.)*(?:"|\\?\Z))|\Z)', re.S
)
# Whole strings, one after another (a key when a colon follows): a search never restarts
# inside a string (at an escaped quote), so a text costs one pass; a string cut at the
# end of the text ends there.
_STRING_KEY_RE = re.compile(r'"((?:[^"\\]++|\\.)*+)(?:"(\s*:)?|\\?\Z)', re.S)
_OPENERS = ("{", "[", "/")
_CONTAINERS = (dict, list)
# `name=value` in free text: query strings, URLs, connection strings, attributes.
_PAIR_RE = re.compile(r"(?:^|(?<=[?&#;,\s\"'(<{]))([^\s=&?#;,\"'<>(){}]{1,256})=")
_PAIR_SECRET_END = re.compile(r"[\s&\"'<>]")
_PAIR_PLAIN_END = re.compile(r"[\s&#;\"'<>]")
# Fields of a form body or a query string: separated by &, ; or line breaks.
_FIELD_RE = re.compile(r"(?:^|(?<=[&;\r\n]))([^=&;\r\n]{1,512})=")
_FIELD_SECRET_END = re.compile(r"[&\r\n]")
_FIELD_PLAIN_END = re.compile(r"[&;\r\n]")
_FORM_SNIFF_RE = re.compile(r"[\w.\-\[\]%*+~]{1,256}=[^\s&]*(?:[&\r\n]|\Z)")
_VALUE_SAFE = "/:@,[]!$'()*"  # kept as is when a form value is encoded again
# The scheme is short: a bounded run keeps the search linear on long dotted text.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}+://[^\s/@:\"'<>]*+):([^\s/@\"'<>]++)@")
_URL_PATH_RE = re.compile(r"(?i)\b((?:https?|wss?)://[^/\s?#\"'<>]+)(/[^\s?#\"'<>]*)")
_REL_PATH_RE = re.compile(r"\A/[^\s?#\"'<>]*")
_LONG_INT_RE = re.compile(r"\d{20}")
_LONG_RUN_RE = re.compile(r"[A-Za-z0-9_.~-]{24}")  # no random segment without one
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]{4,}+(?:\.[A-Za-z0-9_-]*+){1,3}")
_JWT_RUN_RE = re.compile(r"[A-Za-z0-9_.-]*eyJ[A-Za-z0-9_.-]*")  # the runs a JWT may be in
_JWT_STARTS = 8  # "eyJ"s in one run searched one by one; more and the run is hidden whole
_SCHEME_TOKEN_RE = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/-]{16,}=*")
# Text bodies: `Name: value` lines (YAML, HTTP-like dumps) and XML elements.
_LINE_RE = re.compile(r"(?m)^([ \t]*(?:-[ \t]+)?)([A-Za-z_][\w.-]{0,100})([ \t]*:[ \t]*)([^\r\n]+)")
_XML_RE = re.compile(r"<((?:[\w.-]+:)?([A-Za-z_][\w.-]*))(\s[^<>]*)?>([^<]+)</\1\s*>")
# Multipart parts.
_PART_NAME_RE = re.compile(r"(?i);\s*name\*?=\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^;\s]+))")
_PART_TYPE_RE = re.compile(r"(?im)^content-type:[ \t]*([^\r\n]+)")


def _media(content_type: str | None) -> tuple[str, str | None]:
    """The media type of a Content-Type value (lower case) and its boundary, if any."""
    if not content_type:
        return "", None
    mtype, *params = content_type.split(";")
    boundary = None
    for param in params:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "boundary":
            boundary = value.strip().strip('"') or None
    return mtype.strip().lower(), boundary


def _is_json_type(mtype: str) -> bool:
    return mtype in ("application/json", "text/json") or mtype.endswith(("+json", "-json"))


def _sniff_boundary(text: str) -> str | None:
    """The boundary of a multipart body without a usable Content-Type: its first line."""
    if not text.startswith("--"):
        return None
    end = text.find("\n", 0, 256)
    line = text[2:end].rstrip("\r") if end > 0 else ""
    if not line or any(c.isspace() for c in line):
        return None
    return line if "content-disposition" in text[end : end + 1024].lower() else None


def _has_shapes(s: str) -> bool:
    """Whether `s` holds what `Redactor._string` hides: `=`, `://`, a JWT, a scheme token.

    Plain `in` tests: a regex alternation tried at every position costs several
    times more, and this runs for every string of every body.
    """
    return "=" in s or "://" in s or "eyJ" in s or _has_scheme(s)


def _has_scheme(s: str) -> bool:
    """Whether `s` may hold an authorization scheme and its token ("Bearer abc...")."""
    return " " in s and (
        "earer " in s or "asic " in s or "oken " in s or "EARER " in s or "ASIC " in s
        or "OKEN " in s
    )  # fmt: skip


def _shaped(s: str) -> bool:
    """Whether `Redactor._string` may change the string `s` (else it is kept as it is)."""
    if s[:1] in _OPENERS:
        return not s.startswith(REDACTED)
    return _has_shapes(s)


def _dumps(data: Any) -> str:
    try:
        return orjson.dumps(data).decode()
    except TypeError:  # nesting orjson refuses to write
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _unescape(tok: str) -> tuple[str, bool] | None:
    """The text of a JSON string token and whether it is complete (a cut one: its start)."""
    if "\\" not in tok:
        complete = len(tok) > 1 and tok.endswith('"')
        return (tok[1:-1] if complete else tok[1:]), complete
    try:
        return json.loads(tok), True
    except ValueError:
        pass
    # Cut: close it, dropping what remains of a cut escape (`\`, `\u00`).
    for drop in range(6):
        try:
            return json.loads(tok[: len(tok) - drop] + '"'), False
        except ValueError:
            continue
    return None


def _key_text(tok: str) -> str:
    """The name of a key token: a JSON string (unescaped when complete) or a bare word."""
    if not tok.startswith('"'):
        return tok.strip().strip("'")
    if "\\" in tok:
        try:
            value = json.loads(tok)
            return value if isinstance(value, str) else tok
        except ValueError:
            pass
    return tok[1:-1] if len(tok) > 1 and tok.endswith('"') else tok[1:]


# --- the redactor ------------------------------------------------------------------------


class Redactor:
    """Redaction for one deny-list: headers, queries, paths, bodies and JSON values.

    `headers`, `keys`, `query`: names added to the built-in deny-list (`keys`
    applies to JSON keys, form fields, multipart parts and query parameters;
    `query` to query parameters and form fields only). `paths`: regexes whose
    matches in a path (only their groups, when they have any) are redacted.
    `random_segments`: also redact path segments for which `looks_random` holds.
    """

    def __init__(
        self,
        *,
        headers: Iterable[str] = (),
        keys: Iterable[str] = (),
        query: Iterable[str] = (),
        paths: Iterable[str | re.Pattern[str]] = (),
        random_segments: bool = True,
    ) -> None:
        keys = tuple(keys)
        self._header = NameList(headers)
        self._key = NameList(keys)
        self._param = NameList((*keys, *query), whole=_PARAM_WHOLE)
        self._paths = tuple(re.compile(p) for p in paths)
        self.random_segments = random_segments
        # Results callers may keep for this redactor (shadow.pipeline.records: header JSON).
        self.memo: dict[Any, str] = {}

    @classmethod
    def from_settings(cls, settings: RedactSettings) -> Redactor:
        return cls(
            headers=settings.headers,
            keys=settings.keys,
            query=settings.query,
            paths=settings.paths,
            random_segments=settings.random_segments,
        )

    # names

    def is_secret_header(self, name: str) -> bool:
        return name.lower() in SECRET_HEADERS or self._header(name)

    def is_secret_key(self, name: str) -> bool:
        """Whether a JSON key's value is a secret."""
        return self._key(name)

    def is_secret_param(self, name: str) -> bool:
        """Whether a query parameter's, form field's or multipart part's value is a secret."""
        return self._param(name)

    def is_secret_path(self, path: str) -> bool:
        """True when any key on a difference path is secret ($.user.token[0].x)."""
        keys = [k for k in re.split(r"[.\[\]\"']+", path) if k and not k.lstrip("-").isdigit()]
        return any(self._key(k) for k in keys[1:] or keys)

    # the parts of a request or answer

    def headers(self, headers: Iterable[tuple[str, str]]) -> Headers:
        """Headers with secret values replaced (names and order kept); URLs in others cleaned."""
        return tuple(
            (k, REDACTED if self.is_secret_header(k) else self.text(v)) for k, v in headers
        )

    def query(self, query: str) -> str:
        """A query string with secret parameter values replaced."""
        return self._form(query, 0) if "=" in query else query

    def path(self, path: str) -> str:
        """A URL path with configured patterns, random-looking segments, `;k=v` secrets hidden."""
        out = path
        for rx in self._paths:
            out = rx.sub(_masked, out)
        if self.random_segments and len(out) >= _TOKEN_MIN:
            segments = out.split("/")
            if any(looks_random(s) for s in segments):
                out = "/".join(REDACTED if looks_random(s) else s for s in segments)
        if ";" in out and "=" in out:  # path parameters: /app;jsessionid=...
            out = "/".join(map(self._path_params, out.split("/")))
        return out

    def _path_params(self, segment: str) -> str:
        head, *params = segment.split(";")
        if not params:
            return segment
        for i, param in enumerate(params):
            name, eq, value = param.partition("=")
            if eq and value and self._param(name):
                params[i] = f"{name}={REDACTED}"
        return ";".join([head, *params])

    def body_text(self, text: str, content_type: str | None = None) -> str:
        """A decoded body with its secrets replaced, by Content-Type or, without one, by sniffing.

        JSON that parses and needs a change comes back compact; anything unchanged
        comes back as it was.
        """
        return self._body(text, content_type, 0)

    def text(self, value: str) -> str:
        """A free-text value (header value, error message) with secrets found by shape hidden."""
        return self._string(value, 0) if value else value

    def value(self, value: Any) -> Any:
        """A decoded JSON value (as a difference holds it) with its secrets replaced; a copy."""
        if isinstance(value, str):
            return self._string(value, 0)
        if not isinstance(value, dict | list):
            return value
        try:
            copy = orjson.loads(orjson.dumps(value, default=str))
        except TypeError:  # integers beyond 64 bits, keys that are not strings
            try:
                copy = json.loads(json.dumps(value, default=str))
            except (TypeError, ValueError, RecursionError):
                return REDACTED  # not plain JSON: hide rather than guess
        return self._walk(copy, 0)[0]

    # bodies

    def _body(self, text: str, content_type: str | None, depth: int) -> str:
        if not text:
            return text
        mtype, boundary = _media(content_type)
        if depth > _MAX_NESTED:
            return self._text(text, depth)
        if _is_json_type(mtype):
            return self._json_body(text, depth, sniffed=False)
        if mtype == "application/x-www-form-urlencoded":
            return self._form(text, depth)
        if mtype.startswith("multipart/"):
            boundary = boundary if boundary and f"--{boundary}" in text else _sniff_boundary(text)
            if boundary:
                return self._multipart(text, boundary, depth)
        if text.lstrip()[:1] in ("{", "["):
            return self._json_body(text, depth, sniffed=True)
        boundary = _sniff_boundary(text)
        if boundary:
            return self._multipart(text, boundary, depth)
        if _FORM_SNIFF_RE.match(text):
            return self._form(text, depth)
        return self._text(text, depth)

    def _json_body(self, text: str, depth: int, sniffed: bool) -> str:
        parsed = self._json(text, depth)
        if parsed is not None:
            return parsed
        # Cut by the cap, JSON Lines, a prefix (`)]}'`): scan it as tokens instead.
        scanned = self._scan_json(text, depth)
        return self._text(scanned, depth) if sniffed else scanned

    def _json(self, text: str, depth: int) -> str | None:
        """Parsed, walked and (when changed) serialized again; None when it does not parse.

        Most bodies have nothing to hide: when no key of the text is secret and no
        string could hold a secret by shape, the text is not even parsed.
        """
        if not (_has_shapes(text) or '"{' in text or '"[' in text or '"/' in text):
            keys = _json_keys(text)
            unescaped = {_key_text(f'"{k}"') for k in keys if "\\" in k}
            if not self._key.among(keys | unescaped):
                return text  # (valid or not: neither a parse nor the scanner would change it)
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if exc.pos >= len(text):
                return None  # cut short: json would not parse it either
            return self._json_stdlib(text, depth)  # NaN, Infinity
        data, changed = self._walk(data, depth)
        if not changed:
            return text
        if _LONG_INT_RE.search(text):  # orjson read integers beyond 64 bits as floats
            return self._json_stdlib(text, depth)
        return _dumps(data)

    def _json_stdlib(self, text: str, depth: int) -> str | None:
        try:  # json recurses: very deep input fails here, and goes to the scanner
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        data, changed = self._walk(data, depth)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")) if changed else text

    def _walk(self, root: Any, depth: int) -> tuple[Any, bool]:
        """`root` with secrets replaced, containers changed in place, and whether any changed.

        Iterative (an explicit stack), so deep documents cannot exhaust Python's
        stack; containers below _MAX_DEPTH levels are replaced whole.
        """
        if isinstance(root, str):
            new = self._string(root, depth)
            return new, new is not root
        if not isinstance(root, dict | list):
            return root, False
        among, string, shaped = self._key.among, self._string, _shaped
        changed = False
        stack: list[tuple[Any, int]] = [(root, 1)]  # (a dict or a list, its level)
        while stack:
            node, level = stack.pop()
            pairs: Iterable[tuple[Any, Any]]
            if isinstance(node, dict):
                secret = among(node.keys())
                for name in secret:
                    if node[name] is not None and node[name] != REDACTED:  # null hides nothing
                        node[name] = REDACTED
                        changed = True
                pairs = (
                    [(k, v) for k, v in node.items() if k not in secret] if secret else node.items()
                )
            else:
                pairs = enumerate(node)
            # Assigning to an existing key or index while iterating is safe: sizes stay.
            for k, v in pairs:
                if isinstance(v, str):
                    if shaped(v) and (new := string(v, depth)) is not v:
                        node[k] = new
                        changed = True
                elif isinstance(v, _CONTAINERS) and v:
                    if level >= _MAX_DEPTH:
                        node[k] = REDACTED
                        changed = True
                    else:
                        stack.append((v, level + 1))
        return root, changed

    def _scan_json(self, text: str, depth: int, strings: bool = True) -> str:
        """JSON-like text that does not parse, redacted in place (its shape is kept).

        A string followed by a colon is a key; a secret key's value is replaced
        through its closing bracket, or to the end of a text cut short. Other
        strings (with `strings`) are searched like values. Both passes find their
        few targets with regexes, so a long text costs little Python.
        """
        raw_keys = _json_keys(text)
        secret = {k for k in raw_keys if self._key(_key_text(f'"{k}"'))}
        if secret:
            text = self._secret_members(text, secret)
        if not strings or not (_has_shapes(text) or '"{' in text or '"[' in text or '"/' in text):
            return text
        out: list[str] = []
        last = 0
        for m in _SHAPED_STRING_RE.finditer(text):
            tok = m.group(1)
            if tok is not None and _shaped(tok[1:]):
                new = self._json_string(tok, depth)
                if new is not tok:
                    out += [text[last : m.start(1)], new]
                    last = m.end(1)
        if out:
            out.append(text[last:])
            text = "".join(out)
        if _has_scheme(text):  # "Bearer ..." in a string the skip above passed
            text = _SCHEME_TOKEN_RE.sub(rf"\1\2{REDACTED}", text)
        return text

    def _secret_members(self, text: str, secret: set[str]) -> str:
        """`text` with the values of the keys in `secret` (as written in it) replaced."""
        # In JSON a quote inside a string is escaped, so `"name":` is only ever a key.
        names = "|".join(map(re.escape, sorted(secret, key=len, reverse=True)))
        out: list[str] = []
        last = 0
        for m in re.finditer(rf'"(?:{names})"\s*:\s*', text):
            start = m.end()
            if start < last:
                continue  # inside a value already replaced
            end = _value_end(text, start)
            if end > start and text[start:end] not in (_QUOTED, "null"):
                out += [text[last:start], _QUOTED]
                last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _json_string(self, tok: str, depth: int) -> str:
        """A JSON string token with secrets in its text replaced (re-escaped when changed).

        A string cut by the body cap is unescaped as far as it goes and written
        back without its closing quote.
        """
        inner = _unescape(tok)
        if inner is None:
            return tok  # not a string after all
        complete = inner[1]
        new = self._string(inner[0], depth)
        if new is inner[0]:
            return tok
        text = json.dumps(new, ensure_ascii=False)
        return text if complete else text[:-1]

    def _form(self, text: str, depth: int) -> str:
        """A form body or query string: secret fields' values replaced, others searched."""
        out: list[str] = []
        last = pos = 0
        n = len(text)
        while (m := _FIELD_RE.search(text, pos)) is not None:
            start = m.end()
            secret = self._param(m.group(1).strip())
            end_m = (_FIELD_SECRET_END if secret else _FIELD_PLAIN_END).search(text, start)
            end = end_m.start() if end_m else n
            value = text[start:end]
            new = (REDACTED if value else value) if secret else self._field(value, depth)
            if new is not value:
                out += [text[last:start], new]
                last = end
            pos = max(end, start + 1)
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _field(self, value: str, depth: int) -> str:
        """A field's value searched as text, percent-decoded first (encoded again if changed)."""
        if not value or depth >= _MAX_NESTED:
            return value
        encoded = "%" in value or "+" in value
        plain = unquote_plus(value) if encoded else value
        new = self._string(plain, depth + 1)
        if new is plain:
            return value
        return quote_plus(new, safe=_VALUE_SAFE) if encoded else new

    def _multipart(self, text: str, boundary: str, depth: int) -> str:
        delimiter = "--" + boundary
        pieces = text.split(delimiter)
        out = [pieces[0]]  # the preamble
        for piece in pieces[1:]:
            out.append(piece if piece.startswith("--") else self._part(piece, depth))
        return delimiter.join(out)

    def _part(self, piece: str, depth: int) -> str:
        """One multipart part: a secret part's content replaced, another's redacted by type."""
        sep, width = piece.find("\r\n\r\n"), 4
        if sep < 0:
            sep, width = piece.find("\n\n"), 2
        if sep < 0:
            return piece  # cut inside its headers: no content yet
        head, content = piece[: sep + width], piece[sep + width :]
        # The line break before the next delimiter belongs to the delimiter.
        tail = "\r\n" if content.endswith("\r\n") else "\n" if content.endswith("\n") else ""
        content = content[: len(content) - len(tail)]
        name = _PART_NAME_RE.search(head)
        if name is not None and self._param(name.group(1) or name.group(2) or ""):
            content = REDACTED if content else content
        else:
            ctype = _PART_TYPE_RE.search(head)
            content = self._body(content, ctype.group(1) if ctype else None, depth + 1)
        return head + content + tail

    def _text(self, text: str, depth: int) -> str:
        """Text of another kind: JSON fragments, `Name: value` lines, XML elements, then shapes."""
        out = text
        if '"' in out and ":" in out:
            out = self._scan_json(out, depth, strings=False)  # JSON fragments in the text
        if ":" in out:
            out = _LINE_RE.sub(self._line, out)
        if "</" in out:
            out = _XML_RE.sub(self._xml, out)
        return self._string(out, depth, embedded=False)

    def _line(self, m: re.Match[str]) -> str:
        name = m.group(2)
        if m.group(4) == REDACTED or not (self._key(name) or self.is_secret_header(name)):
            return m.group()
        return m.group(1) + name + m.group(3) + REDACTED

    def _xml(self, m: re.Match[str]) -> str:
        if not self._key(m.group(2)) or not m.group(4).strip():
            return m.group()
        text = m.group()
        close = text.rfind("</")
        return text[: close - len(m.group(4))] + REDACTED + text[close:]

    # strings

    def _string(self, s: str, depth: int, embedded: bool = True) -> str:
        """`s` with secrets found by shape replaced; the same object when nothing was found."""
        if not _shaped(s):
            return s
        out = s
        if embedded and depth < _MAX_NESTED and s[:1] in ("{", "[") and len(s) > 1:
            parsed = self._json(s, depth + 1)
            if parsed is not None:
                return parsed
            out = self._scan_json(s, depth + 1)  # cut, or not JSON: then it changes nothing
        if "=" in out:
            out = self._pairs(out, depth)
        paths = self._paths or (self.random_segments and _LONG_RUN_RE.search(out))
        if "://" in out:
            if "@" in out:
                out = _USERINFO_RE.sub(rf"\1:{REDACTED}@", out)
            if paths:
                out = _URL_PATH_RE.sub(lambda m: m.group(1) + self.path(m.group(2)), out)
        elif paths and out[:1] == "/":
            out = _REL_PATH_RE.sub(lambda m: self.path(m.group()), out, count=1)
        if "eyJ" in out:
            out = _JWT_RUN_RE.sub(_jwts_in_run, out)
        if _has_scheme(out):
            out = _SCHEME_TOKEN_RE.sub(rf"\1\2{REDACTED}", out)
        return s if out == s else out

    def _pairs(self, s: str, depth: int) -> str:
        """`name=value` pairs in free text: secret names' values replaced (quoted ones too)."""
        if "%" not in s and not self._param.among(set(_PAIR_RE.findall(s))):
            return s  # the common case, decided without a loop in Python
        out: list[str] = []
        last = pos = 0
        n = len(s)
        encoded = "%" in s
        while (m := _PAIR_RE.search(s, pos)) is not None:
            start = m.end()
            if self._param(m.group(1)):
                if start < n and s[start] in "\"'":
                    close = s.find(s[start], start + 1)
                    start, end = start + 1, close if close >= 0 else n
                else:
                    end_m = _PAIR_SECRET_END.search(s, start)
                    end = end_m.start() if end_m else n
                if end > start and s[start:end] != REDACTED:
                    out += [s[last:start], REDACTED]
                    last = end
                pos = max(end, start)
                continue
            pos = start  # the value may hold more pairs (a URL in a parameter): go on inside
            if encoded:
                end_m = _PAIR_PLAIN_END.search(s, start)
                end = end_m.start() if end_m else n
                value = s[start:end]
                if "%" in value:
                    new = self._field(value, depth)
                    if new is not value:
                        out += [s[last:start], new]
                        last = end
                    pos = end  # searched whole (pairs inside included): never again
        if not out:
            return s
        out.append(s[last:])
        return "".join(out)


def _json_keys(text: str) -> set[str]:
    """The raw text of every key (a string followed by a colon) of JSON-like text."""
    return {m.group(1) for m in _STRING_KEY_RE.finditer(text) if m.group(2) is not None}


def _jwts_in_run(m: re.Match[str]) -> str:
    # Each "eyJ" start scans its run: a run with many (crafted) is hidden whole rather
    # than searched at quadratic cost.
    run = m.group()
    if run.count("eyJ") > _JWT_STARTS:
        return REDACTED
    return _JWT_RE.sub(REDACTED, run)


def _value_end(text: str, pos: int) -> int:
    """Where the JSON value starting at `pos` ends (the end of the text when it was cut)."""
    m = _TOKEN_RE.match(text, pos)
    if m is None:
        return pos
    tok = m.group()
    if tok in ("{", "["):
        tokens = _TOKEN_RE.finditer(text, m.end())
        level = 1
        for t in tokens:
            if t.group() in ("{", "["):
                level += 1
            elif t.group() in ("}", "]"):
                level -= 1
                if level == 0:
                    return t.end()
        return len(text)
    if tok[0] == '"':
        return m.end()
    if tok[0] in ",}]:":
        return pos
    lit = _LITERAL_RE.match(text, pos)
    return lit.end() if lit else pos


DEFAULT = Redactor()


@lru_cache(maxsize=16)
def _built(settings: RedactSettings) -> Redactor:
    return Redactor.from_settings(settings)


def redactor_for(settings: RedactSettings | Redactor | None) -> Redactor:
    """The redactor for a config's `[redact]` settings (DEFAULT for none or the defaults)."""
    if isinstance(settings, Redactor):
        return settings
    if settings is None or settings == RedactSettings():
        return DEFAULT
    return _built(settings)


# The default redactor's operations, as functions.


def is_secret_header(name: str) -> bool:
    return DEFAULT.is_secret_header(name)


def redact_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """Headers with every secret value replaced by REDACTED (names kept)."""
    return DEFAULT.headers(headers)


def redact_query(query: str) -> str:
    """Query string with credential-like parameter values replaced."""
    return DEFAULT.query(query)


def redact_body_text(text: str, content_type: str | None = None) -> str:
    """Body text with secrets replaced (see Redactor.body_text)."""
    return DEFAULT.body_text(text, content_type)


def redact_path(path: str) -> str:
    """A URL path with random-looking segments replaced."""
    return DEFAULT.path(path)


def is_secret_path(path: str) -> bool:
    """True when any key on a difference path is credential-like ($.user.token[0].x)."""
    return DEFAULT.is_secret_path(path)


__all__ = [
    "DEFAULT",
    "REDACTED",
    "SECRET_HEADERS",
    "NameList",
    "Redactor",
    "is_secret_header",
    "is_secret_path",
    "looks_random",
    "name_parts",
    "redact_body_text",
    "redact_headers",
    "redact_path",
    "redact_query",
    "redactor_for",
]
