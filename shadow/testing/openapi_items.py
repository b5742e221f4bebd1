"""`--shadow-openapi SOURCE`: differential tests, one item per operation of a document.

Requests are generated from the document by schemathesis (valid ones: its positive
mode) and sent to both backends; the candidate must answer like the primary. Only
safe methods are generated unless an operation is allowed (`--shadow-unsafe`, or
its route's `mirror_unsafe` in the config: a generated POST writes on both sides).

Each operation runs in two steps, so that every distinct difference is reported
once, with the smallest request that shows it:

1. explore: `--shadow-examples` requests (Hypothesis with a fixed seed,
   `--shadow-seed`: the same requests every run, whatever else changes), keeping
   the first request of each (path, kind) difference and each kind of failure;
2. shrink: for each of them, `hypothesis.find` looks for the smallest request that
   still shows it; that one is sent again (stored with `--shadow-db`) and printed
   as a curl command with its differences.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from shadow.config.routes import server_prefix
from shadow.errors import InputError
from shadow.model import Request
from shadow.testing.explain import rows
from shadow.testing.pair import ShadowPair
from shadow.testing.replay_items import Filters, ParityFailure, ShadowItem, backends_or_fail

if TYPE_CHECKING:
    from shadow.testing.pair import PairResult
    from shadow.testing.plugin import ShadowState

SAFE = ("GET", "HEAD", "OPTIONS")
SHRINK_EXAMPLES = 100  # requests `find` may try to show one difference again
FAILURES_ENOUGH = 3  # failed requests after which an operation stops sending more
SMALL_INTS = 100  # the upper end of integers drawn near zero, where test data's ids are
_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const"}
_KEEP_HEADERS = ("content-type",)


def shown_source(source: str, hide: Any) -> str:
    """The document's source as messages and node ids show it: a URL's password and
    secret query parameters hidden."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:[REDACTED]@{host}" if parts.password is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, hide.query(parts.query), ""))


def _fetched(backend: Any, path: str, query: str, where: str) -> str:
    """The text of a document one backend answers (its deadline and body cap hold)."""
    from comparators import body_text, decode_body

    answer = backend.send(Request("GET", path, query, (("accept", "application/json"),)))
    if answer.payload is None:
        raise InputError(f"cannot fetch {where}: {answer.error}")
    if answer.payload.status >= 400:
        raise InputError(f"cannot fetch {where}: HTTP {answer.payload.status}")
    if answer.payload.full_size is not None:
        raise InputError(f"{where}: larger than {len(answer.payload.body)} bytes, not read")
    raw = decode_body(answer.payload.headers, answer.payload.body)
    return body_text(answer.payload.headers, raw) or raw.decode("utf-8", "replace")


def load_document(source: str, shown: str, state: ShadowState) -> Mapping[str, Any]:
    """The document at a file path, an http(s) URL, or a path on the candidate; `shown`
    is how messages name it."""
    from shadow.config.routes import parse_document, read_document
    from shadow.testing.backends import Backend, BackendError

    if source.startswith("/"):
        backend = state.backend("candidate", state.specs["candidate"])
        where = f"{source} on the candidate ({backend.label})"
        path, _, query = source.partition("?")
        doc = parse_document(_fetched(backend, path, query, where), where)
    elif source.lower().startswith(("http://", "https://")):
        parts = urlsplit(source)
        try:
            fetcher = Backend(f"{parts.scheme}://{parts.netloc}", "--shadow-openapi",
                              timeout=state.timeout)  # fmt: skip
        except BackendError as exc:
            raise InputError(str(exc)) from None
        try:
            doc = parse_document(_fetched(fetcher, parts.path or "/", parts.query, shown), shown)
        finally:
            fetcher.close()
    else:
        doc = parse_document(read_document(source), source)
    if not isinstance(doc.get("paths"), Mapping) or "openapi" not in doc:
        raise InputError(f"{shown} is not an OpenAPI 3 document (no 'openapi' and 'paths')")
    return doc


def operations(doc: Mapping[str, Any], source: str) -> list[Any]:
    """schemathesis' operations of the document, each with its twin from `narrowed(doc)`;
    a broken one is an InputError naming it."""
    ops = _operations(doc, source)
    small = {op.label: op for op in _operations(narrowed(dict(doc)), source)}
    return [(op, small.get(op.label)) for op in ops]


def _operations(doc: Mapping[str, Any], source: str) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import schemathesis
        from schemathesis.core.result import Err

        try:
            schema = schemathesis.openapi.from_dict(dict(doc))
            found = []
            for result in schema.get_all_operations():
                if isinstance(result, Err):
                    raise InputError(f"{source}: {_first_line(result.err())}")
                found.append(result.ok())
        except InputError:
            raise
        except Exception as exc:  # schemathesis' errors for a broken document
            raise InputError(
                f"{source}: not a usable OpenAPI document: {_first_line(exc)}"
            ) from None
    return found


def narrowed(doc: Any) -> Any:
    """A copy of `doc` whose integers without bounds lie in 0..SMALL_INTS.

    Unbounded integers are almost never the few ids a test database holds (1..40 in
    the example apps): half of the generated requests draw from this copy, still
    valid under the document, so that found records (and their differences) are met.
    """
    if isinstance(doc, dict):
        out = {k: narrowed(v) for k, v in doc.items()}
        kind = out.get("type")
        is_int = kind == "integer" or (isinstance(kind, list) and "integer" in kind)
        if is_int and not _BOUNDS & out.keys():
            out.update(minimum=0, maximum=SMALL_INTS)
        return out
    if isinstance(doc, list):
        return [narrowed(v) for v in doc]
    return doc


def _first_line(exc: Any) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())[:300]


def case_request(case: Any, prefix: str = "") -> Request:
    """A generated case as our `Request` (schemathesis' own client headers left out);
    `prefix`: the path of the document's `servers[0].url` (`/v1`)."""
    from shadow.testing.pair import build_request

    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    wanted = {k.lower() for k in (case.headers or {})} | set(_KEEP_HEADERS)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() in wanted}
    cookies = kwargs.get("cookies") or {}
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif "data" in kwargs:
        data = kwargs["data"]
        body["content" if isinstance(data, bytes | str) else "data"] = data
    params = kwargs.get("params") or {}
    url = prefix + case.formatted_path
    return build_request(case.method, url, params=params, headers=headers, **body)


def difference_keys(result: PairResult) -> list[str]:
    """What makes two failures the same: each real (cluster path, kind), or the error.

    Another status is one difference: the bodies of a 400 and a 200 differ everywhere,
    and listing each of their fields would bury the one thing that went wrong.
    """
    if result.verdict in ("candidate_error", "primary_error"):
        side = result.verdict.split("_")[0]
        error = (result.candidate if side == "candidate" else result.primary).error or ""
        # What failed, not its numbers: "timeout after 301 ms" and "...302 ms" are one.
        return [f"{side} failed: {re.sub(r'[0-9]+', 'N', error.split(' (')[0])}"]
    real = [d for d in result.differences if d.status == "real"]
    if any(d.path == "$status" for d in real):
        return ["$status (status)"]
    return sorted({f"{d.cluster_path} ({d.kind})" for d in real})


def curl(request: Request, base: str | None, placeholder: str, hide: Any) -> str:
    """The request as a curl command, its secrets redacted as a stored one's are."""
    from reports.curl import curl_command

    body = None
    if request.body:
        text = request.body.decode("utf-8", "replace")
        body = hide.body_text(text, request.header("content-type"))
    headers = hide.headers(list(request.headers))
    query = hide.query(request.query) if request.query else None
    return curl_command(base, placeholder, request.method, hide.path(request.path), query,
                        headers, body)  # fmt: skip


class OperationItem(ShadowItem):
    """One operation's differential test."""

    def __init__(
        self,
        *,
        operation: Any,
        small: Any,
        state: ShadowState,
        source: str,
        prefix: str,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.operation = operation
        self.small = small
        self.prefix = prefix
        self.state = state
        self.source = source
        self.add_marker("shadow_openapi")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.operation.label} ({self.source})"

    def runtest(self) -> None:
        from hypothesis import HealthCheck, Phase, find, given, seed, settings
        from hypothesis.errors import HypothesisException

        state = self.state
        method = self.operation.method.upper()
        if method not in SAFE and not state.config.may_copy(method, self.operation.path,
                                                            state.unsafe):  # fmt: skip
            pytest.skip(f"{method} is not generated (allow it with --shadow-unsafe or the "
                        "route's mirror_unsafe)")  # fmt: skip
        from hypothesis import strategies as st

        strategy = self.operation.as_strategy()
        if self.small is not None:
            strategy = st.one_of(strategy, self.small.as_strategy())
        pair = backends_or_fail(state.pair)
        prefix = self.prefix
        # Shrinking tries many requests: only the smallest are stored, and the secondary's
        # evidence is not needed to tell whether a request still shows a difference.
        quiet = ShadowPair(pair.primary, pair.candidate, pair.config, run_id=pair.run_id)
        first: dict[str, Any] = {}
        seen: dict[str, int] = {}
        sent = 0
        base = settings(
            database=None,
            derandomize=False,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )

        @seed(state.seed)
        @settings(base, max_examples=state.examples, phases=[Phase.explicit, Phase.generate])
        @given(strategy)
        def explore(case: Any) -> None:
            nonlocal sent
            if sum(n for k, n in seen.items() if " failed: " in k) >= FAILURES_ENOUGH:
                return  # a side that keeps failing (down, hanging): each try costs the timeout
            sent += 1
            for key in difference_keys(pair.compare_request(case_request(case, prefix))):
                seen[key] = seen.get(key, 0) + 1
                first.setdefault(key, case)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                explore()
            except HypothesisException as exc:  # a schema no request satisfies, ...
                raise pytest.fail.Exception(
                    f"{self.operation.label}: cannot generate requests: {_first_line(exc)}",
                    pytrace=False,
                ) from None
            if not first:
                return
            lines = [
                f"{self.operation.label}: {len(first)} distinct difference"
                f"{'s' if len(first) != 1 else ''} in {sent} generated requests; each with the "
                "smallest request that shows it:"
            ]
            shown: dict[str, PairResult] = {}
            for key in sorted(first):
                if key in shown:
                    continue  # the smallest request of an earlier one shows it too

                def shows(case: Any, key: str = key) -> bool:
                    return key in difference_keys(quiet.compare_request(case_request(case, prefix)))

                smallest = first[key]  # unless a smaller one is found: the first, as it came
                if not key.endswith(" failed") and " failed: " not in key:
                    # (A failure is not shrunk: each try of a timeout costs the timeout.)
                    try:
                        smallest = find(
                            strategy,
                            shows,
                            # (No explain phase: it tries far more requests than
                            # shrinking, to say which parts matter; the curl shows them.)
                            settings=settings(
                                base,
                                max_examples=SHRINK_EXAMPLES,
                                phases=[Phase.generate, Phase.shrink],
                            ),
                            random=random.Random(state.seed),
                        )
                    except HypothesisException:
                        pass  # not seen again, or flaky: the first one stands
                result = pair.compare_request(case_request(smallest, prefix))
                for other in difference_keys(result):
                    if other in first:
                        shown.setdefault(other, result)
                shown.setdefault(key, result)
            for key in sorted(first):
                lines += ["", *self._shown(key, seen[key], shown[key])]
        summary = f"{self.operation.label}: {len(first)} distinct: {', '.join(sorted(first))}"
        raise ParityFailure(lines, summary if len(summary) <= 300 else summary[:297] + "...")

    def _shown(self, key: str, count: int, result: PairResult) -> list[str]:
        from shadow.pipeline.redact import redactor_for

        hide = redactor_for(self.state.config.redact)
        target = self.state.specs["candidate"]
        base = target if isinstance(target, str) and "://" in target else None
        out = [f"{key}: in {count} of the generated requests; smallest:"]
        out += ["  " + line for line in curl(result.request, base, "CANDIDATE", hide).splitlines()]
        if result.verdict in ("candidate_error", "primary_error"):
            return [*out, "  " + result.matches().explained.summary]
        mine = [d for d in result.differences if f"{d.cluster_path} ({d.kind})" == key]
        if key == "$status (status)":  # the status, then what its body says
            mine = [d for d in result.differences if d.status == "real"]
        return out + ["  " + ln.strip() for ln in rows(mine, marked=False)]


class OpenAPISource(pytest.Collector):
    """The document as a collector of `OperationItem`s."""

    state: ShadowState
    source: str
    prefix: str
    found: list[Any]

    def collect(self) -> Iterator[OperationItem]:
        for op, small in self.found:
            yield OperationItem.from_parent(
                self, name=op.label, operation=op, small=small, state=self.state,
                source=self.source, prefix=self.prefix,
            )  # fmt: skip


def openapi_items(
    session: pytest.Session, state: ShadowState, filters: Filters
) -> list[pytest.Item]:
    """One item per operation of `--shadow-openapi` (bad document: InputError, one line)."""
    assert state.openapi is not None
    from shadow.pipeline.redact import redactor_for

    source = state.openapi
    shown = shown_source(source, redactor_for(state.config.redact))
    doc = load_document(source, shown, state)
    name = f"openapi[{shown}]"
    path = Path(source).resolve() if Path(source).is_file() else None
    collector = OpenAPISource.from_parent(session, name=name, nodeid=name, path=path)
    collector.state = state
    collector.source = shown
    collector.prefix = server_prefix(doc)
    collector.found = [
        pair
        for pair in operations(doc, shown)
        if filters.keep(pair[0].method, pair[0].path, pair[0].path)
    ]
    return list(collector.collect())
