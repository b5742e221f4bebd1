"""Route by route cutover with the Redis flag store, and the automatic rollback.

Real parts only: a real redis-server (tests/redis_server.py: skipped without it,
failed under CI=true), `shadow proxy` and `shadow flags` as subprocesses, tiny
backends on 127.0.0.1 (test_cutover.Backend), webhooks that work, hang or fail,
and the DuckDB file the proxy writes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT, shadow_cmd
from tests.integration.test_cutover import (
    CHANGE_WITHIN,
    FLAG,
    ROUTE,
    Backend,
    Client,
    Hanging,
    backend,
    events,
    exchange_rows,
    flags,
    lines_with,
    live_rows,
    proxy_for,
    settled,
    stop,
    wait_until,
    wait_worker,
    write_config,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

WINDOW = 5  # [control.rollback] window of these tests, seconds
STALE_AFTER = 2  # [control] stale_after of these tests, seconds


def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)


@dataclass
class RollbackRun:
    """What one proxy run saw while a failing candidate route was rolled back."""

    tmp: Path
    db: Path
    output: str = ""
    healthy: list[str] = field(default_factory=list)  # who answered before the fault
    crossed: float = 0.0  # monotonic time the threshold was crossed (the first failure)
    rolled_back: float = 0.0  # monotonic time feature:<flag> read "false"
    during: list[tuple[int, str]] = field(default_factory=list)  # (status, who) meanwhile
    after: list[str] = field(default_factory=list)  # who answered after the rollback
    keys: dict[str, Any] = field(default_factory=dict)  # the Redis keys afterwards
    cli_view: dict[str, Any] = field(default_factory=dict)  # `shadow flags get --json`
    hook: Backend | None = None
    candidate: Backend | None = None


def _fail_and_wait_for_rollback(
    client: Client, user: str, candidate: Backend, store: redis.Redis, run: RollbackRun
) -> None:
    """Make the candidate fail GETs; send traffic until the route's flag reads false."""
    candidate.failing["GET"] = 503
    deadline = time.monotonic() + WINDOW + 15
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        resp = client.send("GET", user)
        run.during.append((resp.status_code, resp.headers.get("x-backend", "?")))
        if not run.crossed:
            # with 6 healthy requests in the window, 1 failure of 7 (14 %) is over 5 %
            run.crossed = time.monotonic()
        if store.get(f"feature:{FLAG}") == "false":
            run.rolled_back = time.monotonic()
            return
        time.sleep(0.05)
    raise AssertionError(f"no rollback within {WINDOW + 15} s")


@pytest.fixture(scope="module")
def rollback_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RollbackRun]:
    """A candidate route that starts failing, rolled back by the controller (Redis store)."""
    tmp = tmp_path_factory.mktemp("rollback")
    run = RollbackRun(tmp, tmp / "cutover.duckdb")
    with (
        RedisServer(tmp / "redis") as server,
        backend("primary") as primary,
        backend("candidate") as candidate,
        backend("hook") as hook,
    ):
        run.hook, run.candidate = hook.backend, candidate.backend
        config = write_config(tmp, control=f'webhook = "{hook.url}/hook?token=s3cret"')
        spec = server.url
        flags(spec, config, "set", ROUTE, "candidate", "--by", "alice", "--why", "go")
        store = _redis(spec)
        with proxy_for(primary, candidate, tmp, config, spec) as proxy:
            client = Client(proxy.url)
            try:
                settled(client, "candidate", "alice")
                run.healthy = [client.who("alice") for _ in range(6)]
                wait_worker(proxy.db, 6)  # the controller runs: the clock may start
                _fail_and_wait_for_rollback(client, "alice", candidate.backend, store, run)
                time.sleep(CHANGE_WITHIN)  # the proxy reads the rolled-back record
                run.after = [client.who("alice") for _ in range(5)]
                wait_until("the webhook called", lambda: hook.backend.requests("POST"), 10)
                time.sleep(0.5)  # a second call would come now
                run.keys = {
                    "feature": store.get(f"feature:{FLAG}"),
                    "record": json.loads(store.get(f"shadow:route:{ROUTE}") or "null"),
                    "routes": store.smembers("shadow:routes"),
                    "history": [json.loads(h) for h in store.lrange("shadow:history", 0, -1)],
                }
                run.cli_view = json.loads(flags(spec, config, "get", ROUTE, "--json"))
            finally:
                client.close()
                store.close()
            run.output = stop(proxy)
        yield run


def test_failing_candidate_route_is_rolled_back_within_a_window_and_a_second(
    rollback_run: RollbackRun,
) -> None:
    run = rollback_run
    assert run.healthy == ["candidate"] * 6
    took = run.rolled_back - run.crossed
    assert 0 < took <= WINDOW + 1, f"rolled back {took:.2f} s after the threshold was crossed"
    # Zero client-visible errors: every failed GET fell back to the primary.
    assert run.during and {status for status, _ in run.during} == {200}, run.during
    assert {who for _, who in run.during} == {"primary"}
    assert run.after == ["primary"] * 5  # shadow mode now
    assert run.keys["feature"] == "false"
    record = run.keys["record"]
    assert record["mode"] == "shadow" and record["rolled_back"] is True, record
    assert record["by"] == "shadow-controller" and "error rate" in record["why"], record
    assert run.keys["routes"] == {ROUTE}
    last = run.keys["history"][-1]
    assert (last["actor"], last["before"], last["after"]) == (
        "shadow-controller", "candidate", "shadow",
    ), last  # fmt: skip
    assert run.cli_view["mode"] == "shadow" and run.cli_view["rolled_back"] is True
    assert run.cli_view["flag_value"] is False and run.cli_view["source"] == "store"


def test_rollback_is_recorded_as_an_event_and_logged_once(rollback_run: RollbackRun) -> None:
    run = rollback_run
    [rollback] = events(run.db, "rollback")
    assert (rollback["route"], rollback["flag"]) == (ROUTE, FLAG)
    assert (rollback["mode_before"], rollback["mode_after"]) == ("candidate", "shadow")
    assert rollback["actor"] == "shadow-controller"
    evidence = json.loads(rollback["evidence"])
    figures, limits = evidence["figures"], evidence["thresholds"]
    assert limits["window"] == WINDOW and limits["min_requests"] == 5
    assert figures["error_rate"] > limits["error_rate"] and figures["asked"] >= 5
    assert figures["fallbacks"] >= 1 and evidence["set_by"] == "alice"
    # the controller's own change is the rollback event, not a flag_change too
    assert all(c["actor"] != "shadow-controller" for c in events(run.db, "flag_change"))
    logged = lines_with(run.output, r"rolled back /api/items/\{id\}")
    assert len(logged) == 1 and f"feature {FLAG} = false" in logged[0], run.output
    # The store agrees with the clients: the candidate was asked and failed, the primary
    # answered (fell_back); after the rollback the route ran in shadow.
    rows = exchange_rows(run.db)
    fell_back = [r for r in rows if r["fell_back"]]
    assert len(fell_back) >= 1
    assert all(r["mode"] == "candidate" and r["served_by"] == "primary" for r in fell_back)
    assert all(r["candidate_status"] == 503 for r in fell_back)
    assert [r["mode"] for r in rows[-5:]] == ["shadow"] * 5


def test_working_webhook_gets_one_json_post(rollback_run: RollbackRun) -> None:
    assert rollback_run.hook is not None
    [call] = rollback_run.hook.requests("POST")
    assert call.path == "/hook"
    body = json.loads(call.body)
    assert {"text", "shadow"} <= set(body), body
    assert ROUTE in body["text"] and "rolled back" in body["text"]
    assert body["shadow"]["kind"] == "rollback" and body["shadow"]["route"] == ROUTE
    [note] = events(rollback_run.db, "notification")
    assert note["reason"].startswith("webhook sent"), note
    assert "s3cret" not in note["reason"]  # the URL's secret parts are never recorded


def test_check_fails_on_rollback(rollback_run: RollbackRun) -> None:
    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            shadow_cmd(
                "check", "--db", str(rollback_run.db), "--min-parity", "0",
                "--max-candidate-errors", "100", "--min-samples", "1", *extra,
            ),
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    helptext = subprocess.run(
        shadow_cmd("check", "--help"), cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    if "--fail-on-rollback" not in helptext:
        pytest.skip("shadow check has no --fail-on-rollback (yet)")
    plain = check()
    assert plain.returncode == 0, plain.stdout + plain.stderr
    gated = check("--fail-on-rollback")
    assert gated.returncode == 1, gated.stdout + gated.stderr
    assert "rolled back" in gated.stdout and ROUTE in gated.stdout, gated.stdout


# --- 5. Redis unreachable at the start, and stopped during the run ---------------------


def _flag_changes(db: Path) -> int:
    return int(live_rows(db, "SELECT count(*) FROM events WHERE kind = 'flag_change'")[0][0])


def test_redis_down_at_start_then_stopped_during_the_run(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.stop()  # unreachable at the start (connections refused)
    spec = redis_server.url
    config = write_config(tmp_path, control=f"stale_after = {STALE_AFTER}")
    with (
        backend("primary") as primary,
        backend("candidate") as candidate,
        proxy_for(primary, candidate, tmp_path, config, spec) as proxy,
    ):
        client = Client(proxy.url)
        try:
            # The proxy started and serves: the primary answers.
            assert [client.who("bob") for _ in range(3)] == ["primary"] * 3
            wait_worker(proxy.db, 3)
            time.sleep(STALE_AFTER + 0.5)  # both processes past stale_after, then:
            redis_server.start()
            flags(spec, config, "set", ROUTE, "candidate", "--by", "carol")
            wait_until("candidate serving", lambda: client.who("bob") == "candidate", 5)
            wait_until("the change recorded", lambda: _flag_changes(proxy.db), 10, 0.2)

            redis_server.stop()
            stopped = time.monotonic()
            timeline: list[tuple[float, str]] = []
            while time.monotonic() - stopped < STALE_AFTER + 2.5 and len(timeline) < 500:
                timeline.append((time.monotonic() - stopped, client.who("bob")))
                time.sleep(0.05)
        finally:
            client.close()
        out = stop(proxy)

    # The last known mode held until stale_after (its last good read was at most one
    # poll, 0.5 s, before Redis went); then the route went legacy, and stayed there.
    sides = [who for _, who in timeline]
    switch = sides.index("primary")
    assert set(sides[:switch]) == {"candidate"} and set(sides[switch:]) == {"primary"}, timeline
    assert STALE_AFTER - 0.7 <= timeline[switch][0] <= STALE_AFTER + 1.0, timeline[switch]
    assert len(sides) - switch >= 5
    rows = exchange_rows(tmp_path / "cutover.duckdb")
    assert {r["mode"] for r in rows[:3]} <= {"shadow", "legacy"}  # never read: not served
    tail = rows[-(len(sides) - switch) :]
    assert all((r["mode"], r["served_by"]) == ("legacy", "primary") for r in tail), tail
    assert all(r["verdict"] == "skipped" for r in tail)  # legacy: nothing is copied
    copied = {s.path for s in candidate.backend.requests(copies=True)}
    assert not copied & {r["path"] for r in tail}
    # One line per episode (unreachable at the start; stopped later), not one per poll.
    down = lines_with(out, "unreachable: .*keeping the last known flags")
    assert len(down) == 2, out
    assert len(lines_with(out, "routes now legacy")) == 2, out
    log = out.splitlines()
    stale_at = next(i for i, line in enumerate(log) if "routes now legacy" in line)
    at_start = [line for line in log[:stale_at] if "flag" in line]
    assert len(lines_with("\n".join(at_start), "unreachable: ")) >= 1
    assert len(at_start) == 1, at_start  # the worker's own watcher and imports stay quiet


# --- 7. a webhook that hangs changes nothing for clients --------------------------------


@contextlib.contextmanager
def _hanging() -> Iterator[Hanging]:
    h = Hanging()
    try:
        yield h
    finally:
        h.close()


def test_hanging_webhook_does_not_stop_the_proxy_or_change_answers(
    redis_url: str, tmp_path: Path
) -> None:
    with (
        _hanging() as hook,
        backend("primary") as primary,
        backend("candidate") as candidate,
    ):
        config = write_config(tmp_path, control=f'webhook = "{hook.url}"')
        flags(redis_url, config, "set", ROUTE, "candidate")
        store = _redis(redis_url)
        run = RollbackRun(tmp_path, tmp_path / "cutover.duckdb")
        with proxy_for(primary, candidate, tmp_path, config, redis_url) as proxy:
            client = Client(proxy.url)
            try:
                settled(client, "candidate", "dan")
                run.healthy = [client.who("dan") for _ in range(6)]
                wait_worker(proxy.db, 6)
                _fail_and_wait_for_rollback(client, "dan", candidate.backend, store, run)
                wait_until("the webhook called", lambda: hook.conns, 10)
                # While the webhook hangs (3 attempts of 5 s), clients are served as ever.
                slowest = 0.0
                deadline = time.monotonic() + 40
                note: list[tuple[Any, ...]] = []
                for _ in range(100):  # 5 requests and a look at the store each
                    if note or time.monotonic() > deadline:
                        break
                    for _ in range(5):
                        t0 = time.monotonic()
                        assert client.who("dan") == "primary"
                        slowest = max(slowest, time.monotonic() - t0)
                        time.sleep(0.1)
                    note = live_rows(
                        proxy.db, "SELECT reason FROM events WHERE kind = 'notification'"
                    )
                assert note, "no notification event within 40 s"
            finally:
                client.close()
                store.close()
            out = stop(proxy, within=15)

    assert slowest < 1.0, slowest
    assert {status for status, _ in run.during} == {200}
    assert len(hook.conns) == 3  # tried three times, then given up
    [(reason,)] = note
    assert reason.startswith("webhook failed") and "after 3 attempts" in reason, reason
    assert len(lines_with(out, "notifying by webhook failed")) == 1, out
    assert len(events(proxy.db, "rollback")) == 1
