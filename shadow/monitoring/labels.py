"""Bounded label values: route templates and methods, never raw paths or user ids."""

from __future__ import annotations

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_ROUTES = 500  # distinct routes a registry labels; later ones are counted as "other"
OTHER = "other"


class RouteLabels:
    """Splits an endpoint ("GET /api/x/{id}") into bounded (method, route) labels."""

    def __init__(self, limit: int = MAX_ROUTES) -> None:
        self.limit = limit
        self._routes: set[str] = set()
        self.overflow = 0  # endpoints counted under "other" because the limit was reached

    def __call__(self, endpoint: str) -> tuple[str, str]:
        method, _, route = endpoint.partition(" ")
        method = method.upper() if method.upper() in METHODS else "OTHER"
        route = route or "/"
        return method, self.route(route)

    def route(self, route: str) -> str:
        if route in self._routes:
            return route
        if len(self._routes) >= self.limit:
            self.overflow += 1
            return OTHER
        self._routes.add(route)
        return route
