"""shadow.live.addon: the mitmproxy hooks copy requests onto a queue and never touch the flow."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import queue
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions, flow, http
from mitmproxy.test import tflow, tutils

from comparators.model import Payload
from shadow.live.addon import Shadow
from shadow.model import BackendResponse, Request
from shadow.pipeline.sender import MARK_HEADER

with warnings.catch_warnings():
    # mitmproxy.master imports ldap3 and passlib, which trip DeprecationWarnings (pyasn1
    # names, the crypt module) at import time; pyproject only ignores those from mitmproxy.*.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.test import taddons


@pytest.fixture
def ctx_addon(tmp_path: Path) -> Iterator[tuple[Any, Shadow]]:
    addon = Shadow()
    with taddons.context(addon) as tctx:
        yield tctx, addon


@pytest.fixture
def shadow(ctx_addon: tuple[Any, Shadow], tmp_path: Path) -> Shadow:
    """An enabled addon with a plain queue instead of the worker process."""
    tctx, addon = ctx_addon
    tctx.configure(
        addon, shadow_candidate="http://127.0.0.1:9", shadow_db=str(tmp_path / "x.duckdb")
    )
    assert addon.enabled
    addon.queue = queue.Queue(maxsize=10)
    addon.dropped = types.SimpleNamespace(value=0)
    addon._launched = True  # as after `running`, without the worker process
    return addon


def drain(q: queue.Queue[Any]) -> list[Any]:
    """Messages put on the queue, unpacked from the addon's batches."""
    out = []
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            return out
        out.extend(item if isinstance(item, list) else [item])


def test_configure_enables(ctx_addon: tuple[Any, Shadow], tmp_path: Path) -> None:
    tctx, addon = ctx_addon
    db = tmp_path / "x.duckdb"
    tctx.configure(
        addon,
        shadow_candidate="http://127.0.0.1:9/",
        shadow_db=str(db),
        shadow_run_id="run-1",
        shadow_mirror_unsafe="post,put",
        shadow_timeout=2.5,
    )
    assert addon.enabled
    assert addon.settings is not None
    assert addon.settings.candidate == "http://127.0.0.1:9"
    assert addon.settings.db == str(db)
    assert addon.settings.run_id == "run-1"
    assert addon.settings.unsafe_methods == frozenset({"POST", "PUT"})
    assert addon.settings.timeout == 2.5
    assert db.exists()  # the store is prepared at configure time
    assert addon.process is None  # configure never starts the worker


def test_random_run_id_when_not_given(ctx_addon: tuple[Any, Shadow], tmp_path: Path) -> None:
    tctx, addon = ctx_addon
    tctx.configure(addon, shadow_candidate="http://127.0.0.1:9", shadow_db=str(tmp_path / "a.db"))
    assert addon.settings is not None
    assert len(addon.settings.run_id) == 12


def test_disabled_without_candidate(ctx_addon: tuple[Any, Shadow], tmp_path: Path) -> None:
    tctx, addon = ctx_addon
    tctx.configure(addon, shadow_db=str(tmp_path / "x.duckdb"))
    assert not addon.enabled
    assert not (tmp_path / "x.duckdb").exists()
    addon.queue = queue.Queue()
    addon.dropped = types.SimpleNamespace(value=0)
    f = tflow.tflow(resp=True)
    addon.request(f)
    addon.response(f)
    assert addon.queue.empty()
    # switching the candidate off again disables an enabled addon
    tctx.configure(addon, shadow_candidate="http://127.0.0.1:9")
    assert addon.enabled
    tctx.configure(addon, shadow_candidate="")
    assert not addon.enabled


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"shadow_candidate": "ftp://127.0.0.1:9"}, "shadow_candidate"),
        ({"shadow_candidate": "127.0.0.1:9"}, "shadow_candidate"),
        ({"shadow_candidate": "http://127.0.0.1:99999"}, "invalid port"),
        ({"shadow_timeout": 0.0}, "shadow_timeout"),
        ({"shadow_timeout": -1.0}, "shadow_timeout"),
        ({"shadow_timeout": float("nan")}, "shadow_timeout nan"),
        ({"shadow_timeout": float("inf")}, "shadow_timeout inf"),
        ({"shadow_queue_size": 0}, "shadow_queue_size"),
        ({"shadow_mirror_unsafe": "PO-ST"}, "not an HTTP method"),
        ({"shadow_config": "/nonexistent/shadow.toml"}, "not found"),
    ],
)
def test_bad_options_raise_options_error(
    ctx_addon: tuple[Any, Shadow], tmp_path: Path, options: dict[str, Any], needle: str
) -> None:
    tctx, addon = ctx_addon
    kwargs = {"shadow_candidate": "http://127.0.0.1:9", "shadow_db": str(tmp_path / "x.duckdb")}
    kwargs.update(options)
    with pytest.raises(exceptions.OptionsError, match=needle):
        tctx.configure(addon, **kwargs)
    assert not addon.enabled


def test_db_in_missing_directory_is_options_error(
    ctx_addon: tuple[Any, Shadow], tmp_path: Path
) -> None:
    tctx, addon = ctx_addon
    with pytest.raises(exceptions.OptionsError, match="does not exist"):
        tctx.configure(
            addon, shadow_candidate="http://127.0.0.1:9", shadow_db=str(tmp_path / "no" / "x.db")
        )


def test_request_queues_a_copy_of_the_request(shadow: Shadow) -> None:
    req = tutils.treq(
        method=b"POST",
        path=b"/api/start-analysis?x=1&token=abc",
        headers=http.Headers(
            ((b"content-type", b"application/json"), (b"authorization", b"Bearer t"))
        ),
        content=b'{"name": "x"}',
    )
    f = tflow.tflow(req=req)
    before = time.time()
    shadow.request(f)
    (msg,) = drain(shadow.queue)
    kind, key, record, ts, skip, served, sent = msg
    assert before <= sent <= time.time()  # passed on now: the copy's pace starts here
    assert served is None  # no route modes here (the running hook never ran)
    assert skip is None
    assert (kind, key) == ("req", f.id)
    assert isinstance(record, Request)
    assert record.method == "POST"
    assert record.path == "/api/start-analysis"
    assert record.query == "x=1&token=abc"
    assert record.headers == (
        ("content-type", "application/json"),
        ("authorization", "Bearer t"),
    )
    assert record.body == b'{"name": "x"}'
    assert ts == f.request.timestamp_start
    assert shadow.queued == 1


def test_request_from_default_tflow(shadow: Shadow) -> None:
    f = tflow.tflow()
    shadow.request(f)
    (msg,) = drain(shadow.queue)
    assert msg[:6] == (
        "req",
        f.id,
        Request("GET", "/path", "", (("header", "qvalue"), ("content-length", "7")), b"content"),
        946681200,
        None,
        None,
    )


def test_response_queues_raw_primary_answer(shadow: Shadow) -> None:
    body = b'{"items": [1, 2, 3]}' * 50
    resp = tutils.tresp(
        headers=http.Headers(
            ((b"content-type", b"application/json"), (b"content-encoding", b"gzip"))
        ),
        content=b"",
    )
    resp.raw_content = gzip.compress(body)
    f = tflow.tflow(resp=resp)
    shadow.request(f)
    shadow.response(f)
    req_msg, resp_msg = drain(shadow.queue)
    assert req_msg[0] == "req"
    kind, key, answer = resp_msg
    assert (kind, key) == ("resp", f.id)
    assert isinstance(answer, BackendResponse)
    assert answer.error is None
    assert answer.payload == Payload(
        200,
        (("content-type", "application/json"), ("content-encoding", "gzip")),
        gzip.compress(body),
    )
    assert gzip.decompress(answer.payload.body) == body  # still encoded, as on the wire
    # request end (946681201) to response end (946681203)
    assert answer.elapsed_ms == pytest.approx(2000.0)


def test_the_primary_is_timed_from_when_the_request_was_passed_on(shadow: Shadow) -> None:
    """Not from when the proxy finished reading it: its own hooks are not the primary's
    time (the candidate's clock, too, starts when its copy is sent)."""
    f = tflow.tflow(resp=True)
    now = time.time()
    f.request.timestamp_start = f.request.timestamp_end = now - 1.0  # read a second ago
    shadow.request(f)  # passed on now
    assert f.response is not None
    f.response.timestamp_end = time.time() + 0.5
    shadow.response(f)
    _, (_, _, answer) = drain(shadow.queue)
    assert 450 < answer.elapsed_ms < 600
    assert answer.lag_ms is None  # no event loop watched here (outside mitmproxy)


def test_error_queues_failed_primary(shadow: Shadow) -> None:
    f = tflow.tflow(err=True)
    shadow.request(f)
    shadow.error(f)
    _, (kind, key, answer) = drain(shadow.queue)
    assert (kind, key) == ("resp", f.id)
    assert answer.payload is None
    assert answer.error == f.error.msg == "error"


def test_error_after_response_is_not_queued(shadow: Shadow) -> None:
    f = tflow.tflow(resp=True, err=True)
    shadow.request(f)
    shadow.response(f)
    shadow.error(f)  # e.g. the client went away after its answer: not a second answer
    messages = drain(shadow.queue)
    assert [m[0] for m in messages] == ["req", "resp"]
    assert messages[1][2].payload is not None


def test_primary_breaking_mid_answer_is_queued_as_primary_failure(shadow: Shadow) -> None:
    f = tflow.tflow(resp=True, err=True)  # headers came, then the connection broke
    shadow.request(f)
    shadow.error(f)
    messages = drain(shadow.queue)
    assert [m[0] for m in messages] == ["req", "resp"]
    answer = messages[1][2]
    assert answer.payload is None
    assert answer.error.startswith("primary connection broke during its answer")


def test_response_without_queued_request_is_ignored(shadow: Shadow) -> None:
    f = tflow.tflow(resp=True)
    shadow.response(f)
    shadow.error(tflow.tflow(err=True))
    assert shadow.queue.empty()


def test_full_queue_drops_and_counts_without_blocking(shadow: Shadow) -> None:
    shadow.queue = queue.Queue(maxsize=1)
    first, second = tflow.tflow(resp=True), tflow.tflow(resp=True)
    start = time.monotonic()
    shadow.request(first)  # fills the queue
    shadow.request(second)  # shed: a copy dropped, counted here
    shadow.response(first)  # kept back: the worker has its request and waits for it
    shadow.response(second)  # its request was shed: not sent at all
    assert time.monotonic() - start < 1.0
    assert shadow.dropped.value == 1
    assert [m[:2] for m in drain(shadow.queue)] == [("req", first.id)]
    # room again: the kept-back answer goes first, then the new flow
    third = tflow.tflow(resp=True)
    shadow.request(third)
    assert [m[:2] for m in drain(shadow.queue)] == [("resp", first.id), ("req", third.id)]
    shadow.response(third)
    assert [m[:2] for m in drain(shadow.queue)] == [("resp", third.id)]
    assert shadow.dropped.value == 1
    assert not shadow._shed_ids  # forgotten once its flow ended


def test_marked_copy_is_ignored(shadow: Shadow) -> None:
    f = tflow.tflow(resp=True)
    f.request.headers[MARK_HEADER] = "1"
    shadow.request(f)
    shadow.response(f)
    assert shadow.queue.empty()
    assert shadow.queued == 0


def test_replayed_flow_is_ignored(shadow: Shadow) -> None:
    f = tflow.tflow(resp=True)
    f.is_replay = "request"
    shadow.request(f)
    assert shadow.queue.empty()


def test_hooks_do_not_modify_the_flow(shadow: Shadow) -> None:
    req = tutils.treq(path=b"/a?b=1", headers=http.Headers(((b"cookie", b"s=1"),)))
    f = tflow.tflow(req=req, resp=True)
    before_req, before_resp = f.request.get_state(), f.response.get_state()
    shadow.request(f)
    shadow.response(f)
    assert f.request.get_state() == before_req
    assert f.response is not None and f.response.get_state() == before_resp
    assert f.error is None
    assert not f.intercepted
    g = tflow.tflow(err=True)
    before = g.request.get_state(), g.error.get_state()
    shadow.request(g)
    shadow.error(g)
    assert (g.request.get_state(), g.error.get_state()) == before
    assert g.response is None


def test_hooks_do_nothing_when_disabled_after_configure(
    ctx_addon: tuple[Any, Shadow], tmp_path: Path
) -> None:
    tctx, addon = ctx_addon
    tctx.configure(addon, shadow_candidate="http://127.0.0.1:9", shadow_db=str(tmp_path / "d.db"))
    # enabled but no worker yet: no queue, nothing happens and nothing raises
    f = tflow.tflow(resp=True)
    addon.request(f)
    addon.response(f)
    assert addon.queued == 0


@pytest.mark.parametrize(
    ("content_type", "streamed"),
    [
        ("application/x-ndjson", True),
        ("multipart/x-mixed-replace", True),
        ("application/json", False),
    ],
)
def test_streamed_answers_pass_through_and_are_skipped(
    shadow: Shadow, content_type: str, streamed: bool
) -> None:
    resp = tutils.tresp(headers=http.Headers(((b"content-type", content_type.encode()),)))
    f = tflow.tflow(resp=resp)
    shadow.request(f)
    shadow.responseheaders(f)
    assert bool(f.response.stream) is streamed  # type: ignore[union-attr]
    shadow.response(f)
    messages = drain(shadow.queue)
    if not streamed:
        assert [m[0] for m in messages] == ["req", "resp"]
        return
    assert [m[0] for m in messages] == ["req", "skip", "resp"]  # the response hook adds none
    assert "not compared" in messages[1][2]
    answer = messages[2][2]
    assert answer.payload.status == 200 and answer.payload.body == b""


@pytest.mark.parametrize("content_type", ["text/event-stream", "text/event-stream; charset=utf-8"])
def test_an_event_stream_passes_through_and_a_copy_is_kept(
    shadow: Shadow, content_type: str
) -> None:
    resp = tutils.tresp(headers=http.Headers(((b"content-type", content_type.encode()),)))
    f = tflow.tflow(resp=resp)
    shadow.request(f)
    shadow.responseheaders(f)
    tap = f.response.stream  # type: ignore[union-attr]
    assert callable(tap)
    chunks = [b"data: 1\n\n", b"event: x\ndata: ", b"2\n\n"]
    assert [tap(c) for c in chunks] == chunks  # each chunk goes on as it came
    assert drain(shadow.queue)[-1][0] == "req"  # nothing for the worker until the end
    assert tap(b"") == b""
    shadow.response(f)  # after a stream: adds nothing
    [(kind, key, answer, ended, times, t_end)] = drain(shadow.queue)
    assert (kind, key, ended) == ("sse", f.id, "closed")
    assert answer.payload.body == b"".join(chunks) and answer.payload.status == 200
    # each chunk's end (bytes so far) and time: the events' times
    assert [n for n, _ in times] == [9, 24, 27] and t_end >= times[-1][1] >= 0


@pytest.mark.parametrize(
    ("error", "ended"),
    [
        ("connection reset", "error"),  # the primary broke it
        ("Client disconnected.", "limit"),  # the client left: no failure of the primary
    ],
)
def test_an_event_stream_ended_early_is_compared_as_far_as_it_came(
    shadow: Shadow, error: str, ended: str
) -> None:
    resp = tutils.tresp(headers=http.Headers(((b"content-type", b"text/event-stream"),)))
    f = tflow.tflow(resp=resp)
    shadow.request(f)
    shadow.responseheaders(f)
    f.response.stream(b"data: 1\n\n")  # type: ignore[union-attr, operator]
    f.error = flow.Error(error)
    shadow.error(f)
    messages = drain(shadow.queue)
    assert [m[0] for m in messages] == ["req", "sse"]
    assert messages[1][2].payload.body == b"data: 1\n\n" and messages[1][3] == ended


def test_streams_pass_through_even_when_shadowing_is_off(ctx_addon: tuple[Any, Shadow]) -> None:
    _, addon = ctx_addon
    resp = tutils.tresp(headers=http.Headers(((b"content-type", b"text/event-stream"),)))
    f = tflow.tflow(resp=resp)
    addon.responseheaders(f)
    assert f.response.stream is True  # type: ignore[union-attr]


def test_request_body_over_max_body_is_not_copied(shadow: Shadow) -> None:
    assert shadow.settings is not None
    shadow.settings = dataclasses.replace(shadow.settings, max_body=10)
    f = tflow.tflow(req=tutils.treq(method=b"POST", content=b"x" * 11))
    shadow.request(f)
    (message,) = drain(shadow.queue)
    assert message[0] == "req"
    assert message[2].body == b""  # not carried to the worker
    # The reason travels with the request: the worker never starts that copy.
    assert message[4] == "request body over 10 bytes: not copied"


def test_primary_answer_over_max_body_is_cut_with_its_digest(shadow: Shadow) -> None:
    assert shadow.settings is not None
    shadow.settings = dataclasses.replace(shadow.settings, max_body=100)
    body = b"y" * 1000
    f = tflow.tflow(resp=tutils.tresp(content=body))
    shadow.request(f)
    shadow.response(f)
    answer = drain(shadow.queue)[1][2]
    assert answer.payload.body == body[:100]
    assert answer.payload.full_size == 1000
    assert answer.payload.sha256 == hashlib.sha256(body).hexdigest()


def test_requests_after_the_stop_are_refused_not_counted(shadow: Shadow) -> None:
    shadow.request(tflow.tflow())
    shadow._stopped = True  # the worker was told to stop and the clients let go
    late = tflow.tflow()
    shadow.request(late)
    assert late.error is not None  # killed: never forwarded to the primary
    assert [m[0] for m in drain(shadow.queue)] == ["req"]
    assert shadow.seen == 1 and shadow.queued == 1
    assert shadow._after_stop == 0


def test_requests_while_the_worker_restarts_are_counted(shadow: Shadow) -> None:
    shadow.queue = None  # as between a worker's death and its restart, without a queue
    f = tflow.tflow(resp=True)
    shadow.request(f)
    shadow.response(f)
    assert shadow.seen == 1


@pytest.mark.parametrize(
    ("mode", "host"),
    [
        ("reverse:http://127.0.0.1:3000", "127.0.0.1:3000"),
        ("reverse:https://legacy.internal@8081", "legacy.internal"),  # @8081: listen port
        ("reverse:https://legacy.internal:8443", "legacy.internal:8443"),
        ("reverse:http://[::1]:80", "[::1]"),
        ("reverse:bad://", ""),
    ],
)
def test_the_primary_host_comes_from_mitmproxys_reading_of_the_mode(mode: str, host: str) -> None:
    from shadow.live.addon import _reverse_host

    assert _reverse_host(mode) == host
