"""Grouping of requests into endpoints: METHOD + route template.

Templates come from configured patterns (`/api/analysis/{id}`, `/files/{path:path}`)
or, where none matches, from replacing id-like path segments with `{id}`.
Query strings never split an endpoint.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")

_ID_SEGMENT_RES = (
    re.compile(r"^\d+$"),  # integers
    re.compile(
        r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    ),
    re.compile(r"^(?=.*\d)[0-9a-fA-F]{8,}$"),  # long hex: object ids, hashes
    re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+Z?)?$"),  # dates in paths
    re.compile(
        r"^[A-Za-z]{1,8}[_-]?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{6,}$"
    ),  # prefixed ids: usr_a1b2c3
)
_TOKENISH_RE = re.compile(r"^[A-Za-z0-9_-]{16,}={0,2}$")


def is_id_like(segment: str) -> bool:
    """True for path segments that look like identifiers rather than names."""
    if any(r.match(segment) for r in _ID_SEGMENT_RES):
        return True
    if _TOKENISH_RE.match(segment):
        # base64-ish tokens mix classes; long plain words or kebab-case names do not
        has_digit = any(c.isdigit() for c in segment)
        has_upper = any(c.isupper() for c in segment)
        has_lower = any(c.islower() for c in segment)
        return (has_digit and (has_upper or has_lower)) or (has_upper and has_lower)
    return False


def auto_template(path: str) -> str:
    """Path with id-like segments replaced by `{id}`."""
    segments = path.split("/")
    return "/".join("{id}" if seg and is_id_like(seg) else seg for seg in segments)


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A configured route template, compiled to a regex."""

    template: str
    regex: re.Pattern[str]
    methods: frozenset[str] | None = None  # None: any method

    @classmethod
    def parse(cls, template: str, methods: Iterable[str] | None = None) -> RoutePattern:
        if not template.startswith("/"):
            raise ValueError(f"route {template!r} must start with '/'")
        parts: list[str] = []
        pos = 0
        for m in _PARAM_RE.finditer(template):
            parts.append(re.escape(template[pos : m.start()]))
            parts.append(".+" if m.group(2) == "path" else "[^/]+")
            pos = m.end()
        parts.append(re.escape(template[pos:]))
        if "{" in _PARAM_RE.sub("", template) or "}" in _PARAM_RE.sub("", template):
            raise ValueError(f"route {template!r} has a malformed {{parameter}}")
        regex = re.compile("^" + "".join(parts) + "/?$")
        meths = frozenset(m.upper() for m in methods) if methods else None
        return cls(template=template, regex=regex, methods=meths)

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.regex.match(path) is not None


class EndpointMatcher:
    """Maps (method, path) to an endpoint name, caching recent paths."""

    def __init__(self, patterns: Iterable[RoutePattern] = ()) -> None:
        # Literal templates first, then fewer parameters: "/a/new" beats "/a/{id}".
        self.patterns = sorted(
            patterns, key=lambda p: (len(_PARAM_RE.findall(p.template)), -len(p.template))
        )
        self._cached = lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, method: str, path: str) -> str:
        for pattern in self.patterns:
            if pattern.matches(method, path):
                return f"{method} {pattern.template}"
        return f"{method} {auto_template(path)}"

    def endpoint(self, method: str, path: str) -> str:
        """'METHOD /route/{id}' for a request."""
        return self._cached(method.upper(), path.split("?", 1)[0] or "/")

    def pattern_for(self, method: str, path: str) -> RoutePattern | None:
        for pattern in self.patterns:
            if pattern.matches(method.upper(), path):
                return pattern
        return None


def endpoint_matches(pattern: str, endpoint: str) -> bool:
    """Whether `endpoint` ("GET /api/x/{id}") is `pattern`, or matches it as a shell glob.

    The one definition of how an [[accepted]] entry names endpoints: the writer's
    provisional judgement and every reader (shadow.store.outcomes) use it.
    """
    return pattern == endpoint or fnmatch.fnmatchcase(endpoint, pattern)
