"""`--shadow-openapi SOURCE`: differential tests, one item per operation of a document.

Requests are generated from the document by schemathesis (valid ones: its positive
mode) and sent to both backends; the candidate must answer like the primary. Only
safe methods are generated unless an operation is allowed (`--shadow-unsafe`, or
its route's `mirror_unsafe` in the config: a generated POST writes on both sides).

Each operation runs in two steps, so that every distinct difference is reported
once, with the smallest request that shows it:

1. explore: `--shadow-examples` requests (Hypothesis, derandomized: the same run
   every time), keeping the first request of each (path, kind) difference and each
   kind of failure;
2. shrink: for each of them, `hypothesis.find` looks for the smallest request that
   still shows it; that one is sent again (stored with `--shadow-db`) and printed
   as a curl command with its differences.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shadow.errors import InputError
from shadow.model import Request
from shadow.testing.explain import rows
from shadow.testing.pair import ShadowPair
from shadow.testing.replay_items import Filters, ParityFailure, ShadowItem

if TYPE_CHECKING:
    from shadow.testing.pair import PairResult
    from shadow.testing.plugin import ShadowState

SAFE = ("GET", "HEAD", "OPTIONS")
SHRINK_EXAMPLES = 200  # requests `find` may try to show one difference again
_KEEP_HEADERS = ("content-type",)


def load_document(source: str, state: ShadowState) -> Mapping[str, Any]:
    """The document at a file path, an http(s) URL, or a path on the candidate."""
    from shadow.config.routes import parse_document, read_document

    if source.startswith("/"):
        backend = state.backend("candidate", state.specs["candidate"])
        answer = backend.send(Request("GET", source, "", (("accept", "application/json"),)))
        where = f"{source} on the candidate ({backend.label})"
        if answer.payload is None:
            raise InputError(f"cannot fetch {where}: {answer.error}")
        if answer.payload.status >= 400:
            raise InputError(f"cannot fetch {where}: HTTP {answer.payload.status}")
        from comparators import body_text, decode_body

        raw = decode_body(answer.payload.headers, answer.payload.body)
        text = body_text(answer.payload.headers, raw) or raw.decode("utf-8", "replace")
        doc = parse_document(text, where)
    else:
        doc = parse_document(read_document(source), source)
    if not isinstance(doc.get("paths"), Mapping) or "openapi" not in doc:
        raise InputError(f"{source} is not an OpenAPI 3 document (no 'openapi' and 'paths')")
    return doc


def operations(doc: Mapping[str, Any], source: str) -> list[Any]:
    """schemathesis' operations of the document; a broken one is an InputError naming it."""
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


def _first_line(exc: Any) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())[:300]


def case_request(case: Any) -> Request:
    """A generated case as our `Request` (schemathesis' own client headers left out)."""
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
    url = case.formatted_path
    return build_request(case.method, url, params=params, headers=headers, **body)


def difference_keys(result: PairResult) -> list[str]:
    """What makes two failures the same: each real (cluster path, kind), or the error."""
    if result.verdict in ("candidate_error", "primary_error"):
        side = result.verdict.split("_")[0]
        error = (result.candidate if side == "candidate" else result.primary).error or ""
        return [f"{side} failed: {error.split(' (')[0]}"]
    return sorted(
        {f"{d.cluster_path} ({d.kind})" for d in result.differences if d.status == "real"}
    )


def curl(request: Request, base: str | None, placeholder: str, hide: Any) -> str:
    from reports.curl import curl_command

    body = request.body.decode("utf-8", "replace") if request.body else None
    headers = hide.headers(list(request.headers))
    return curl_command(base, placeholder, request.method, request.path, request.query or None,
                        headers, body)  # fmt: skip


class OperationItem(ShadowItem):
    """One operation's differential test."""

    def __init__(self, *, operation: Any, state: ShadowState, source: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.operation = operation
        self.state = state
        self.source = source
        self.add_marker("shadow_openapi")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.operation.label} ({self.source})"

    def runtest(self) -> None:
        from hypothesis import HealthCheck, Phase, find, given, settings
        from hypothesis.errors import NoSuchExample

        state = self.state
        method = self.operation.method.upper()
        if method not in SAFE and not state.config.may_copy(method, self.operation.path,
                                                            state.unsafe):  # fmt: skip
            pytest.skip(f"{method} is not generated (allow it with --shadow-unsafe or the "
                        "route's mirror_unsafe)")  # fmt: skip
        strategy = self.operation.as_strategy()
        pair = state.pair()
        # Shrinking tries many requests: only the smallest are stored, and the secondary's
        # evidence is not needed to tell whether a request still shows a difference.
        quiet = ShadowPair(pair.primary, pair.candidate, pair.config, run_id=pair.run_id)
        first: dict[str, Any] = {}
        seen: dict[str, int] = {}
        sent = 0
        base = settings(
            database=None,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )

        @settings(base, max_examples=state.examples, phases=[Phase.explicit, Phase.generate])
        @given(strategy)
        def explore(case: Any) -> None:
            nonlocal sent
            sent += 1
            for key in difference_keys(pair.compare_request(case_request(case))):
                seen[key] = seen.get(key, 0) + 1
                first.setdefault(key, case)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            explore()
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
                    return key in difference_keys(quiet.compare_request(case_request(case)))

                try:
                    smallest = find(
                        strategy, shows, settings=settings(base, max_examples=SHRINK_EXAMPLES)
                    )
                except NoSuchExample:
                    smallest = first[key]  # not seen again: the first one, as it came
                result = pair.compare_request(case_request(smallest))
                for other in difference_keys(result):
                    if other in first:
                        shown.setdefault(other, result)
                shown.setdefault(key, result)
            for key in sorted(first):
                lines += ["", *self._shown(key, seen[key], shown[key])]
        raise ParityFailure(lines)

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
        return out + ["  " + ln.strip() for ln in rows(mine, marked=False)]


class OpenAPISource(pytest.Collector):
    """The document as a collector of `OperationItem`s."""

    state: ShadowState
    source: str
    found: list[Any]

    def collect(self) -> Iterator[OperationItem]:
        for op in self.found:
            yield OperationItem.from_parent(
                self, name=op.label, operation=op, state=self.state, source=self.source
            )


def openapi_items(
    session: pytest.Session, state: ShadowState, filters: Filters
) -> list[pytest.Item]:
    """One item per operation of `--shadow-openapi` (bad document: InputError, one line)."""
    assert state.openapi is not None
    source = state.openapi
    doc = load_document(source, state)
    name = f"openapi[{source}]"
    path = Path(source).resolve() if Path(source).is_file() else None
    collector = OpenAPISource.from_parent(session, name=name, nodeid=name, path=path)
    collector.state = state
    collector.source = source
    collector.found = [
        op for op in operations(doc, source) if filters.keep(op.method, op.path, op.path)
    ]
    return list(collector.collect())
