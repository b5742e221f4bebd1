"""Who answers: effective modes (stale store, gates, unread flags) and sticky decisions."""

from __future__ import annotations

from shadow.config.control import RouteMode, check_mode
from shadow.config.loader import parse_config
from shadow.control import bucket
from shadow.control.flags import FlagState
from shadow.control.routing import Router, effective_mode

ROUTE = "/api/items/{id}"
CONFIG = parse_config(
    {
        "endpoints": [{"route": ROUTE, "mode": "candidate", "flag": "new_items"}],
        "control": {"flag": "new_backend", "sticky": ["header:x-user-id"]},
    }
)
CONTROL = CONFIG.control


def test_config_mode_applies_without_a_record() -> None:
    mode = effective_mode(CONTROL, FlagState(), ROUTE, stale=False, ever_read=True)
    assert mode.mode == "candidate"
    other = effective_mode(CONTROL, FlagState(), "/api/other", stale=False, ever_read=True)
    assert other.mode == "shadow"  # routes the config does not name: shadow


def test_record_overrides_the_config() -> None:
    state = FlagState(routes={ROUTE: check_mode("canary", 30)})
    mode = effective_mode(CONTROL, state, ROUTE, stale=False, ever_read=True)
    assert (mode.mode, mode.percent) == ("canary", 30)


def test_any_false_gate_demotes_a_serving_mode_to_shadow() -> None:
    for gate in ("new_items", "new_backend"):
        state = FlagState(features={gate: False})
        mode = effective_mode(CONTROL, state, ROUTE, stale=False, ever_read=True)
        assert mode.mode == "shadow" and gate in mode.why
    state = FlagState(features={"new_items": True, "new_backend": True})
    assert effective_mode(CONTROL, state, ROUTE, stale=False, ever_read=True).mode == "candidate"
    legacy = FlagState(routes={ROUTE: RouteMode("legacy")}, features={"new_items": True})
    assert effective_mode(CONTROL, legacy, ROUTE, stale=False, ever_read=True).mode == "legacy"


def test_unread_flags_send_nobody_to_the_candidate_and_stale_ones_go_legacy() -> None:
    assert effective_mode(CONTROL, FlagState(), ROUTE, stale=False, ever_read=False).mode == (
        "shadow"
    )
    assert effective_mode(CONTROL, FlagState(), ROUTE, stale=True, ever_read=True).mode == (
        "legacy"
    )


def test_decide_candidate_and_canary_are_sticky_per_user() -> None:
    router = Router(CONTROL, CONFIG.matcher)
    d = router.decide("GET", "/api/items/7", [], FlagState(), stale=False, ever_read=True)
    assert (d.route, d.mode, d.serve, d.reverse, d.set_cookie) == (
        ROUTE, "candidate", True, True, None,
    )  # fmt: skip
    state = FlagState(routes={ROUTE: check_mode("canary", 25)})
    served = set()
    for i in range(400):
        headers = [("X-User-Id", f"u{i}")]
        first = router.decide("GET", f"/api/items/{i}", headers, state, stale=False, ever_read=True)
        again = router.decide("GET", "/api/items/1", headers, state, stale=False, ever_read=True)
        assert first.serve == again.serve == bucket.in_canary(ROUTE, f"u{i}", 25)
        assert first.set_cookie is None  # the user has a key
        served.add(first.serve)
    assert served == {True, False}


def test_a_user_without_a_key_gets_the_proxy_cookie() -> None:
    router = Router(CONTROL, CONFIG.matcher)
    state = FlagState(routes={ROUTE: check_mode("canary", 50)})
    d = router.decide("GET", "/api/items/1", [], state, stale=False, ever_read=True, secure=True)
    assert d.set_cookie is not None and d.set_cookie.startswith("shadow_uid=")
    assert "Secure" in d.set_cookie
    key = d.set_cookie.split(";", 1)[0].split("=", 1)[1]
    back = [("Cookie", f"shadow_uid={key}")]
    again = router.decide("GET", "/api/items/2", back, state, stale=False, ever_read=True)
    assert again.set_cookie is None and again.serve == d.serve == bucket.in_canary(ROUTE, key, 50)


def test_modes_follow_a_new_state() -> None:
    router = Router(CONTROL, CONFIG.matcher)
    one = FlagState(routes={ROUTE: RouteMode("shadow")})
    two = FlagState(routes={ROUTE: RouteMode("legacy")})
    assert router.mode(ROUTE, one, stale=False, ever_read=True).mode == "shadow"
    assert router.mode(ROUTE, two, stale=False, ever_read=True).mode == "legacy"
    assert router.mode(ROUTE, two, stale=True, ever_read=True).mode == "legacy"


def test_a_route_covers_every_method_of_its_paths() -> None:
    """A mode covers the route, not only the methods its [[endpoints]] entry lists."""
    config = parse_config(
        {"endpoints": [{"route": "/api/analysis/{id}", "methods": ["GET"], "mode": "candidate"}]}
    )
    router = Router(config.control, config.matcher)
    for method in ("GET", "DELETE", "PUT"):
        d = router.decide(method, "/api/analysis/my-report", [], FlagState(), stale=False,
                          ever_read=True)  # fmt: skip
        assert (d.route, d.serve) == ("/api/analysis/{id}", True), method
