"""Bounded label values: route templates and methods, never raw paths or user ids."""

from __future__ import annotations

import re
from collections.abc import Iterable

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_ROUTES = 500  # distinct routes a registry labels; later ones are counted as "other"
OTHER = "other"
MASK = "{x}"  # a path segment of an automatic template that may be data, not a name
# A segment kept in a label when the route was not declared: a plain lowercase word.
_WORD = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")


class RouteLabels:
    """Splits an endpoint ("GET /api/x/{id}") into bounded (method, route) labels."""

    def __init__(self, limit: int = MAX_ROUTES, declared: Iterable[str] = ()) -> None:
        self.limit = limit
        self.declared = frozenset(declared)  # [[endpoints]] templates: shown as written
        self._routes: set[str] = set()
        self.overflow = 0  # endpoints counted under "other" because the limit was reached

    def __call__(self, endpoint: str) -> tuple[str, str]:
        method, _, route = endpoint.partition(" ")
        method = method.upper() if method.upper() in METHODS else "OTHER"
        route = route or "/"
        return method, self.route(route)

    def route(self, route: str) -> str:
        route = self.safe(route)
        if route in self._routes:
            return route
        if len(self._routes) >= self.limit:
            self.overflow += 1
            return OTHER
        self._routes.add(route)
        return route

    def safe(self, route: str) -> str:
        """`route`, with every segment of an undeclared route that is not a plain word
        (an e-mail, a token, a name with capitals or dots) shown as {x}: automatic
        templates only replace id-like segments, and a label leaves the machine."""
        if route in self.declared or route == OTHER:
            return route
        parts = route.split("/")
        return "/".join(
            p if not p or (p.startswith("{") and p.endswith("}")) or _WORD.fullmatch(p) else MASK
            for p in parts
        )
