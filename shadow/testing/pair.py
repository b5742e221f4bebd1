"""One request to both backends, judged as the harness judges it: `ShadowPair`.

    result = shadow_pair.get("/api/analysis/3")
    assert result.matches()          # falsy `Parity` on a difference; pytest shows them

A result is an `Exchange` evaluated by the pipeline's own `evaluate` (the same
comparators, the config's rules, [[accepted]] entries, a secondary's direct
evidence, the same redaction): its verdict is the one a single exchange gets when
it is stored. What the store's outcome definition adds over a whole run (noise
statistics of an endpoint) is for `shadow report` / `shadow check` on `--shadow-db`.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import httpx

from comparators import envelope
from comparators.decode import DEFAULT_DECODED_LIMIT, media_type
from comparators.model import Payload
from shadow.config.endpoints import RoutePattern
from shadow.config.loader import SAFE_METHODS, Config, EndpointConfig
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline import evaluate
from shadow.pipeline.redact import redactor_for
from shadow.pipeline.sender import SSE_TYPE
from shadow.store.rows import DifferenceRow
from shadow.testing.explain import Explained, explain

SOURCE = "pytest"
_ids = itertools.count(1)


@dataclass(frozen=True)
class MarkedConfig(Config):
    """A config with one test's rules on top (`@pytest.mark.shadow(...)`), and its route."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    route: str | None = None

    def rules_for(self, method: str, path: str) -> Any:
        base = super().rules_for(method, path)
        return base.merged(self.extra) if self.extra else base

    def _endpoint_config(self, method: str, path: str) -> EndpointConfig | None:
        if self.route is not None:
            mine = next((e for e in self.endpoints if e.pattern.template == self.route), None)
            if mine is not None:
                return mine
        return super()._endpoint_config(method, path)


def with_marker(config: Config, route: str | None, compare: Mapping[str, Any]) -> Config:
    """`config` with a marker's route and rules; ValueError / RuleError on bad ones."""
    if route is None and not compare:
        return config
    values = {f.name: getattr(config, f.name) for f in fields(Config) if f.init}
    if route is not None:
        pattern = RoutePattern.parse(route)  # ValueError names a bad template
        if not any(e.pattern.template == pattern.template for e in config.endpoints):
            values["endpoints"] = (EndpointConfig(pattern), *config.endpoints)
        route = pattern.template
    config.rules.merged(compare)  # RuleError now, not at the first request
    return MarkedConfig(**values, extra=dict(compare), route=route)


@dataclass(frozen=True)
class Parity:
    """Whether a result matches: falsy when it does not, with the differences as its text.

    Its repr is one line (pytest shows it in the assert line); the whole table is in
    `str()` and in the failed test's "shadow parity" section.
    """

    ok: bool
    explained: Explained

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.explained.summary

    def __str__(self) -> str:
        return "\n".join(self.explained.lines)


@dataclass(frozen=True)
class PairResult:
    """Both answers to one request, and how they compare."""

    request: Request
    endpoint: str
    primary: BackendResponse
    candidate: BackendResponse
    verdict: str  # match | differ | candidate_error | primary_error
    differences: Sequence[DifferenceRow]  # redacted values, with their status
    exchange: Exchange = field(repr=False)
    evaluated: evaluate.Evaluated = field(repr=False)
    backends: tuple[str, str] = ("primary", "candidate")

    def matches(self) -> Parity:
        """Truthy when the verdict is `match`; else falsy, with the differences."""
        ok = self.verdict == "match"
        return Parity(ok, explain(self))

    def json(self, side: str = "primary") -> Any:
        """The decoded JSON body of one side (`primary` or `candidate`)."""
        answer = self.primary if side == "primary" else self.candidate
        if answer.payload is None:
            raise ValueError(f"the {side} failed: {answer.error}")
        return httpx.Response(
            answer.payload.status,
            headers=list(answer.payload.headers),
            content=answer.payload.body,
        ).json()

    def __repr__(self) -> str:
        from shadow.testing.explain import shown_target

        return f"<PairResult {self.request.method} {shown_target(self)}: {self.verdict}>"


Observer = Callable[[PairResult], None]


class Sends(Protocol):
    """What a pair sends through: a `Backend`, or one seen with a flag set (`FlagSide`)."""

    label: str

    def send(self, request: Request) -> BackendResponse: ...


class ShadowPair:
    """Sends each request to the primary and the candidate (and, for safe methods, the
    secondary when there is one) and judges the answers under `config`.

    `send(method, url, ...)` takes httpx's request arguments (`params`, `headers`,
    `json`, `content`, `data`, `files`, `cookies`); `get`, `post`, ... are shortcuts.
    """

    def __init__(
        self,
        primary: Sends,
        candidate: Sends,
        config: Config,
        *,
        secondary: Sends | None = None,
        observers: Sequence[Observer] = (),
        run_id: str = "",
        body_cap: int = 65536,
        names: tuple[str, str] = ("primary", "candidate"),
    ) -> None:
        self.primary = primary
        self.candidate = candidate
        self.secondary = secondary
        self.config = config
        self.observers = list(observers)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.body_cap = body_cap
        self.names = names
        self.results: list[PairResult] = []  # every result of this pair, in order

    def send(self, method: str, url: str, **kwargs: Any) -> PairResult:
        """One request to both backends; `url` is a path (and query) on each."""
        return self.compare_request(build_request(method, url, **kwargs))

    def compare_request(
        self, request: Request, primary: BackendResponse | None = None, started: float = 0.0
    ) -> PairResult:
        """Judge `request`; `primary`: an answer already known (a recorded one)."""
        started = started or time.time()
        if primary is None:
            primary = self.primary.send(request)
        candidate = self.candidate.send(request)
        secondary = None
        if self.secondary is not None and request.method.upper() in SAFE_METHODS:
            secondary = self.secondary.send(request)
        return self.judge(request, primary, candidate, secondary, started)

    def judge(
        self,
        request: Request,
        primary: BackendResponse,
        candidate: BackendResponse,
        secondary: BackendResponse | None = None,
        started: float = 0.0,
    ) -> PairResult:
        """Evaluate two answers (and a secondary's) to `request` as the pipeline does."""
        config = self.config
        primary, candidate = as_stream(primary), as_stream(candidate)
        secondary = as_stream(secondary) if secondary is not None else None
        route = getattr(config, "route", None)
        shown = redactor_for(config.redact).path(request.path)
        endpoint = (
            f"{request.method.upper()} {route}"
            if route is not None
            else config.matcher.endpoint(request.method, shown)
        )
        exchange = Exchange(
            id=f"{self.run_id}-{next(_ids)}",
            request=request,
            primary=primary,
            candidate=candidate,
            endpoint=endpoint,
            started_at=started or time.time(),
            source=SOURCE,
            secondary=secondary,
        )
        evaluated = evaluate.evaluate(exchange, config, self.run_id, self.body_cap)
        result = PairResult(
            request,
            endpoint,
            primary,
            candidate,
            evaluated.verdict,
            evaluated.differences,
            exchange,
            evaluated,
            self.names,
        )
        self.results.append(result)
        for observe in self.observers:
            observe(result)
        return result

    def get(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> PairResult:
        return self.send("DELETE", url, **kwargs)


def as_stream(answer: BackendResponse) -> BackendResponse:
    """An event stream's answer (read to its end) as its events, compared as the proxy does."""
    p = answer.payload
    if p is None or p.stream or media_type(p.headers) != SSE_TYPE:
        return answer
    conv = envelope.sse_conversation(p.headers, p.body, "closed", DEFAULT_DECODED_LIMIT)
    body = envelope.encode(conv)
    return replace(answer, payload=Payload(p.status, p.headers, body, stream=envelope.SSE))


def build_request(method: str, url: str, **kwargs: Any) -> Request:
    """A `Request` encoded by httpx from its usual arguments (json=, params=, ...)."""
    if "://" in url:
        raise ValueError(f"{url!r}: give a path (and query); the pair adds each backend's URL")
    if not url.startswith("/"):
        url = "/" + url
    built = httpx.Request(method.upper(), "http://testserver" + url, **kwargs)
    body = built.read()
    headers = tuple(
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in built.headers.raw
        if k.lower() not in (b"host", b"content-length")
    )
    raw_path = built.url.raw_path.decode("ascii")
    path, _, query = raw_path.partition("?")
    return Request(method.upper(), path, query, headers, body)
