"""The rollback controller: judged by the store's own figures, acts once, never promotes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from comparators.model import Payload
from shadow.config.control import RouteMode, Thresholds
from shadow.config.loader import Config, parse_config
from shadow.control.flags import Change, open_store
from shadow.control.judge import Figures, Window, judge, naive
from shadow.control.rollback import Controller
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.evaluate import Evaluated, evaluate
from shadow.store.rows import EventRow
from shadow.store.writer import Run, StoreWriter, reading

ROUTE = "/api/items/{id}"
JSON = (("content-type", "application/json"),)


def _answer(status: int, body: dict[str, Any] | None, ms: float = 5.0) -> BackendResponse:
    if body is None:
        return BackendResponse.failed("connection refused (test)", ms)
    return BackendResponse(Payload(status, JSON, json.dumps(body).encode()), elapsed_ms=ms)


def _exchange(
    i: int,
    *,
    served_by: str = "candidate",
    fell_back: bool = False,
    candidate_status: int = 200,
    candidate_body: dict[str, Any] | None = None,
    primary: bool = True,
    refused: bool = False,
    mode: str = "candidate",
    at: float | None = None,
) -> Exchange:
    body = {"id": i, "name": f"item {i}"}
    return Exchange(
        id=f"x{i}",
        request=Request("GET", f"/api/items/{i}"),
        primary=_answer(200, body) if primary else BackendResponse(None),
        candidate=_answer(candidate_status, None if refused else (candidate_body or body)),
        endpoint=f"GET {ROUTE}",
        started_at=time.time() if at is None else at,
        skip_reason=None if primary else "served by the candidate (no copy to the primary)",
        mode=mode,
        served_by=served_by,
        fell_back=fell_back,
    )


def _evaluated(exchanges: list[Exchange], config: Config) -> list[Evaluated]:
    return [evaluate(e, config, "run1", 4096) for e in exchanges]


def _mixed(now: float) -> list[Exchange]:
    """Candidate-served exchanges: matching, differing, 5xx (fell back), refused."""
    out = []
    for i in range(60):
        at = now - 50 + i * 0.5
        if i % 10 == 0:
            out.append(
                _exchange(i, served_by="primary", fell_back=True, candidate_status=503, at=at)
            )
        elif i % 10 == 1:
            out.append(_exchange(i, candidate_body={"id": i, "name": "other"}, at=at))
        elif i % 15 == 2:
            out.append(_exchange(i, served_by="primary", fell_back=True, refused=True, at=at))
        else:
            out.append(_exchange(i, at=at))
    # shadow-mode traffic of the same route: the primary's latency, the parity
    out += [_exchange(100 + i, served_by="primary", mode="shadow", at=now - 20) for i in range(20)]
    return out


def test_judge_holds_below_min_requests_and_fails_over_thresholds() -> None:
    t = Thresholds(min_requests=20)
    base = Figures(ROUTE, 19, 19, 19, 0, 0, 0, 1.0, 0.0, None, None, None, None)
    assert judge(base, t) == ("hold", [])  # too few: held, never healthy
    failing = replace(base, asked=100, served=90, candidate_errors=10, error_rate=0.10)
    verdict, crossed = judge(failing, t)
    assert verdict == "failing" and "error rate 10.0% > 5.0%" in crossed[0]
    healthy = replace(failing, candidate_errors=2, error_rate=0.02)
    assert judge(healthy, t) == ("healthy", [])
    slow = replace(healthy, served=50, latency_ratio=3.0)
    assert judge(slow, t)[0] == "healthy"  # latency is judged only when asked to
    assert judge(slow, replace(t, latency_ratio=2.0))[0] == "failing"


def test_window_figures_equal_the_stored_figures(tmp_path: Path) -> None:
    """One definition: the controller's figures are those every store reader gets."""
    config = parse_config({})
    now = time.time()
    results = _evaluated(_mixed(now), config)
    window = Window(config)
    window.add(results)
    live = window.figures(now - 60)[ROUTE]
    db = str(tmp_path / "s.duckdb")
    writer = StoreWriter(db)
    writer.run_changed(Run(run_id="run1", source="proxy", started_at=now - 60))
    for r in results:
        writer.add(r.row, r.differences, r.noise)
    writer.flush()
    since = now - 60
    cut = naive(since)
    with reading(db) as con:
        stored = con.execute(
            "SELECT route, asked, served, candidate_errors, fallbacks, compared, mismatches, "
            "error_rate, fallback_rate, mismatch_rate, latency_ratio, candidate_p95_ms, "
            "primary_p95_ms FROM shadow_route_figures(NULL, ?, NULL, NULL)",
            [cut],
        ).fetchall()
    assert [Figures(*row) for row in stored] == [live]
    # 6 answered 503 and 4 were refused (all fell back); 6 of the 50 served differ
    assert live.asked == 60 and live.fallbacks == 10 and live.candidate_errors == 10
    assert live.served == 50 and live.compared == 50 and live.mismatches == 6
    assert live.error_rate == live.fallback_rate == 10 / 60
    window.forget_before(now - 10)
    assert ROUTE not in window.figures(since)  # all of it left the window


def _controller(tmp_path: Path, config: Config, events: list[EventRow]) -> Controller:
    store = open_store(str(tmp_path / "flags.json"))
    return Controller(config, store, "run1", events.extend, interval=3600, known_events=set())


def test_failing_route_is_rolled_back_once_and_never_promoted(tmp_path: Path) -> None:
    config = parse_config(
        {
            "endpoints": [{"route": ROUTE, "flag": "new_items"}],
            "control": {"rollback": {"min_requests": 10, "failures": 2}},
        }
    )
    events: list[EventRow] = []

    async def scenario() -> None:
        setter = open_store(str(tmp_path / "flags.json"))
        person = Change("c1", time.time() - 1, "alice", "canary looked fine", "route", ROUTE,
                        "new_items", "shadow", "candidate")  # fmt: skip
        await setter.set_route(ROUTE, RouteMode("candidate", by="alice", at=time.time() - 1),
                               "new_items", person)  # fmt: skip
        controller = _controller(tmp_path, config, events)
        await controller.start()
        now = time.time()
        healthy = [_exchange(i, at=now) for i in range(30)]
        for r in _evaluated(healthy, config):
            controller.observe(r)
        await controller.tick()
        assert not any(e.kind == "rollback" for e in events)
        failing = [
            _exchange(100 + i, served_by="primary", fell_back=True, candidate_status=500, at=now)
            for i in range(10)
        ]
        for r in _evaluated(failing, config):
            controller.observe(r)
        await controller.tick()  # failed check 1 of 2: not yet
        assert not any(e.kind == "rollback" for e in events)
        await controller.tick()  # 2 of 2: rolled back
        rollbacks = [e for e in events if e.kind == "rollback"]
        assert len(rollbacks) == 1
        assert rollbacks[0].mode_before == "candidate" and rollbacks[0].mode_after == "shadow"
        evidence = json.loads(rollbacks[0].evidence or "{}")
        assert evidence["figures"]["candidate_errors"] == 10
        state = await setter.read({"new_items"})
        assert state.routes[ROUTE].mode == "shadow" and state.routes[ROUTE].rolled_back
        assert state.features["new_items"] is False
        for _ in range(3):  # still failing data in the window: no second action, no promotion
            await controller.tick()
        assert len([e for e in events if e.kind == "rollback"]) == 1
        state = await setter.read({"new_items"})
        assert state.routes[ROUTE].mode == "shadow"
        # A person promotes it again: judged afresh, on what came after.
        later = time.time() + 0.01
        again = Change("c2", later, "bob", "fixed", "route", ROUTE, "new_items", "shadow",
                       "candidate")  # fmt: skip
        await setter.set_route(
            ROUTE, RouteMode("candidate", by="bob", at=later), "new_items", again
        )
        await controller.watcher.refresh()
        await controller.tick()
        await controller.tick()
        assert len([e for e in events if e.kind == "rollback"]) == 1
        changes = [e for e in events if e.kind == "flag_change"]
        assert {e.actor for e in changes} >= {"alice", "bob"}
        await controller.aclose()
        await setter.aclose()

    asyncio.run(scenario())


def test_too_few_requests_hold(tmp_path: Path) -> None:
    config = parse_config({"endpoints": [{"route": ROUTE, "mode": "candidate"}]})
    events: list[EventRow] = []

    async def scenario() -> None:
        controller = _controller(tmp_path, config, events)
        await controller.start()
        now = time.time()
        bad = [
            _exchange(i, served_by="primary", fell_back=True, candidate_status=502, at=now)
            for i in range(19)  # all failing, one short of min_requests (20)
        ]
        for r in _evaluated(bad, config):
            controller.observe(r)
        for _ in range(3):
            await controller.tick()
        assert not [e for e in events if e.kind == "rollback"]
        await controller.aclose()
        assert next(e for e in events if e.kind == "fallbacks").reason.startswith("19 requests")

    asyncio.run(scenario())


def test_no_rollback_when_told_not_to(tmp_path: Path) -> None:
    config = parse_config({"endpoints": [{"route": ROUTE, "mode": "candidate"}]})
    events: list[EventRow] = []

    async def scenario() -> None:
        store = open_store(str(tmp_path / "flags.json"))
        controller = Controller(config, store, "run1", events.extend, act=False, interval=3600)
        await controller.start()
        now = time.time()
        bad = [_exchange(i, candidate_status=500, served_by="candidate", at=now) for i in range(40)]
        for r in _evaluated(bad, config):
            controller.observe(r)
        for _ in range(3):
            await controller.tick()
        await controller.aclose()
        assert not [e for e in events if e.kind == "rollback"]

    asyncio.run(scenario())


def test_data_from_before_a_kill_switch_is_not_judged_after_it(tmp_path: Path) -> None:
    config = parse_config(
        {
            "endpoints": [{"route": ROUTE, "mode": "candidate", "flag": "new_items"}],
            "control": {"rollback": {"min_requests": 10, "failures": 1}},
        }
    )
    events: list[EventRow] = []

    async def scenario() -> None:
        setter = open_store(str(tmp_path / "flags.json"))
        controller = _controller(tmp_path, config, events)
        await controller.start()
        off = Change.new("feature", "alice", "incident", flag="new_items")
        await setter.set_feature("new_items", False, off)
        await controller.watcher.refresh()
        await controller.tick()  # the route runs shadow now
        now = time.time()
        bad = [_exchange(i, served_by="primary", fell_back=True, candidate_status=500, at=now)
               for i in range(20)]  # fmt: skip
        for r in _evaluated(bad, config):
            controller.observe(r)
        await controller.tick()
        on = Change.new("feature", "alice", "fixed", flag="new_items")
        await setter.set_feature("new_items", True, on)
        await controller.watcher.refresh()
        for _ in range(3):
            await controller.tick()
        assert not [e for e in events if e.kind == "rollback"]  # the 20 errors came before
        later = time.time() + 0.01
        worse = [_exchange(100 + i, served_by="primary", fell_back=True, candidate_status=500,
                           at=later) for i in range(12)]  # fmt: skip
        for r in _evaluated(worse, config):
            controller.observe(r)
        await controller.tick()
        assert len([e for e in events if e.kind == "rollback"]) == 1  # new errors do count
        await controller.aclose()
        await setter.aclose()

    asyncio.run(scenario())


def test_noise_seen_in_shadow_mode_is_no_mismatch_after_the_cutover(tmp_path: Path) -> None:
    """A volatile field the secondary shows as noise does not roll a route back."""
    config = parse_config(
        {
            "endpoints": [{"route": ROUTE, "mode": "candidate"}],
            "control": {"rollback": {"min_requests": 10, "failures": 1}},
        }
    )
    now = time.time()

    def answer(i: int, salt: str) -> BackendResponse:
        return _answer(200, {"id": i, "nonce": f"{salt}{i}"})

    shadow = [
        replace(
            _exchange(i, served_by="primary", mode="shadow", at=now - 5),
            primary=answer(i, "p"), candidate=answer(i, "c"), secondary=answer(i, "s"),
        )
        for i in range(30)
    ]  # fmt: skip
    served = [
        replace(_exchange(100 + i, at=now), primary=answer(i, "p"), candidate=answer(i, "c"))
        for i in range(20)
    ]
    results = _evaluated(shadow + served, config)
    events: list[EventRow] = []

    async def scenario() -> None:
        controller = _controller(tmp_path, config, events)
        await controller.start()
        for r in results:
            controller.observe(r)
        await controller.tick()
        await controller.aclose()

    asyncio.run(scenario())
    assert not [e for e in events if e.kind == "rollback"]
    window = Window(config)
    window.add(results)
    figures = window.figures(now - 60)[ROUTE]
    assert (figures.compared, figures.mismatches) == (20, 0)


def test_window_keeps_at_most_its_limit() -> None:
    config = parse_config({})
    now = time.time()
    results = _evaluated([_exchange(i, at=now - 30 + i * 0.1) for i in range(50)], config)
    window = Window(config)
    window.add(results)
    assert window.keep_newest(100) == 0
    assert window.keep_newest(20) == 30
    assert window.figures(now - 60)[ROUTE].asked == 20


def test_two_controllers_of_a_fleet_roll_back_once(tmp_path: Path) -> None:
    config = parse_config(
        {
            "endpoints": [{"route": ROUTE, "flag": "new_items"}],
            "control": {"rollback": {"min_requests": 10, "failures": 1}},
        }
    )
    events: list[EventRow] = []

    async def scenario() -> None:
        setter = open_store(str(tmp_path / "flags.json"))
        at = time.time() - 1
        await setter.set_route(ROUTE, RouteMode("candidate", by="alice", at=at), "new_items",
                               Change.new("route", "alice", route=ROUTE))  # fmt: skip
        one = _controller(tmp_path, config, events)
        two = _controller(tmp_path, config, events)
        for c in (one, two):
            await c.start()
        now = time.time()
        bad = _evaluated(
            [_exchange(i, served_by="primary", fell_back=True, candidate_status=500, at=now)
             for i in range(20)], config,
        )  # fmt: skip
        for c in (one, two):
            for r in bad:
                c.observe(r)
        await one.tick()
        await two.tick()  # its watcher has not seen the rollback yet: it reads afresh
        for c in (one, two):
            await c.aclose()
        await setter.aclose()

    asyncio.run(scenario())
    assert len([e for e in events if e.kind == "rollback"]) == 1
    history = asyncio.run(open_store(str(tmp_path / "flags.json")).history())
    assert [c.actor for c in history] == ["alice", "shadow-controller"]
    assert history[-1].before == "candidate"


def test_a_flag_pulled_by_a_person_meanwhile_is_left_alone(tmp_path: Path) -> None:
    config = parse_config(
        {
            "endpoints": [{"route": ROUTE, "mode": "candidate", "flag": "new_items"}],
            "control": {"rollback": {"min_requests": 10, "failures": 1}},
        }
    )
    events: list[EventRow] = []

    async def scenario() -> None:
        controller = _controller(tmp_path, config, events)
        await controller.start()
        now = time.time()
        bad = [_exchange(i, served_by="primary", fell_back=True, candidate_status=500, at=now)
               for i in range(20)]  # fmt: skip
        for r in _evaluated(bad, config):
            controller.observe(r)
        person = open_store(str(tmp_path / "flags.json"))
        off = Change.new("feature", "alice", "pulled by hand", flag="new_items")
        await person.set_feature("new_items", False, off)  # the watcher has not seen it yet
        await controller.tick()
        await controller.aclose()
        state = await person.read({"new_items"})
        assert ROUTE not in state.routes  # no rolled-back record written over her change
        assert state.features["new_items"] is False

    asyncio.run(scenario())
    assert not [e for e in events if e.kind == "rollback"]
