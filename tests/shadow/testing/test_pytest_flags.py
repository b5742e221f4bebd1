"""`shadow_flag_pair(flag=...)`: one backend asked with a feature flag false, then true.

The backend is a tiny ASGI app (the inner session's conftest) that reads the flag
file on every request, as an app reading its flag store per request does; the
pair writes the flag through the file store (shadow/control/file_store.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]

FLAG_APP = """
import json
from pathlib import Path

import pytest

FLAGS = Path(__file__).parent / "flags.json"
SEEN = []  # the flag value each request saw


def flag_on():
    try:
        doc = json.loads(FLAGS.read_text())
    except FileNotFoundError:
        return False
    return doc.get("features", {}).get("new_x", False) is True


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    on = flag_on()
    SEEN.append(on)
    if scope["path"] == "/same":
        body = {"total": 10}
    else:  # /changed: the new code path answers another total
        body = {"total": 11 if on else 10}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture(scope="session")
def shadow_candidate():
    return app
"""

FLAG_TESTS = """
import json
from pathlib import Path

import conftest

FLAGS = Path(conftest.__file__).parent / "flags.json"


def features():
    return json.loads(FLAGS.read_text())["features"] if FLAGS.exists() else {}


def test_same(shadow_flag_pair):
    pair = shadow_flag_pair(flag="new_x")
    result = pair.get("/same")
    assert conftest.SEEN[-2:] == [False, True]  # legacy first, then candidate
    assert result.matches()


def test_changed(shadow_flag_pair):
    FIRST = @FIRST@
    # The previous test's writes were put back (absent reads as off).
    assert features().get("new_x", False) == bool(FIRST)
    pair = shadow_flag_pair(flag="new_x")
    assert pair.get("/changed").matches()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert(ROOT)
    pytester.makeconftest(FLAG_APP)
    return pytester


def seed(path: Path, value: bool | None) -> None:
    if value is not None:
        path.write_text(json.dumps({"features": {"new_x": value}}))


def store(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def run(inner: pytest.Pytester, first: bool | None) -> tuple[pytest.RunResult, Path]:
    flags = inner.path / "flags.json"
    seed(flags, first)
    inner.makepyfile(test_flags=FLAG_TESTS.replace("@FIRST@", repr(first)))
    return inner.runpytest("--shadow-flags", str(flags)), flags


@pytest.mark.parametrize("first", [False, True])
def test_equal_answers_pass_different_ones_fail(inner: pytest.Pytester, first: bool) -> None:
    result, flags = run(inner, first)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert GET /changed differs: $.total (value_changed)",
            "*- shadow parity -*",
            "GET /changed (GET /changed): 1 difference, legacy != candidate",
            "  $.total: 10 != 11 (value_changed)",
        ]
    )
    doc = store(flags)
    # The flag's first value is back once the tests are done.
    assert doc["features"] == {"new_x": first}
    history = doc["history"]
    assert history, doc
    assert {change["actor"] for change in history} == {"pytest"}
    assert {change["kind"] for change in history} == {"feature"}
    assert {change["flag"] for change in history} == {"new_x"}
    reasons = [change["reason"] for change in history]
    # Two tests, each: legacy, candidate, then restored.
    assert reasons == 2 * [
        "shadow flag test: legacy",
        "shadow flag test: candidate",
        "shadow flag test: restored",
    ]
    assert [change["after"] for change in history] == 2 * ["false", "true", json.dumps(first)]
    assert history[0]["before"] == json.dumps(first)


def test_a_flag_absent_at_first_is_not_left_on(inner: pytest.Pytester) -> None:
    result, flags = run(inner, None)
    doc = store(flags)
    assert {change["actor"] for change in doc["history"]} == {"pytest"}
    assert doc["history"][0]["before"] is None
    # Absent reads as off: after the session the flag must not be left on.
    assert doc["features"].get("new_x", False) is False, doc["features"]
    result.assert_outcomes(passed=1, failed=1)
    # test_changed fails on its parity, not because it found new_x left on by test_same.
    result.stdout.fnmatch_lines(["E * assert GET /changed differs: $.total (value_changed)"])


def test_restored_even_when_the_test_fails_midway(inner: pytest.Pytester) -> None:
    flags = inner.path / "flags.json"
    seed(flags, False)
    inner.makepyfile(
        test_boom="""
        def test_boom(shadow_flag_pair):
            pair = shadow_flag_pair(flag="new_x")
            pair.get("/same")
            raise RuntimeError("boom after the candidate side was written")
        """
    )
    result = inner.runpytest("--shadow-flags", str(flags))
    result.assert_outcomes(failed=1)
    doc = store(flags)
    assert doc["features"] == {"new_x": False}
    assert doc["history"][-1]["reason"] == "shadow flag test: restored"


def test_a_bad_call_fails_its_test_with_one_line(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_bad_call="""
        def test_both(shadow_flag_pair):
            shadow_flag_pair(route="/api/x/{id}", flag="new_x")
        """
    )
    result = inner.runpytest("--shadow-flags", str(inner.path / "flags.json"))
    result.assert_outcomes(failed=1)
    rep = next(
        r
        for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        if r.failed
    )
    assert "Traceback" not in result.stdout.str()
    assert rep.longreprtext.strip().splitlines() == [
        "shadow_flag_pair: give exactly one of route= (a route template) or flag= (a name)"
    ]
    assert not (inner.path / "flags.json").exists()  # nothing was written


TWO_PAIRS = """
import conftest


def test_two_pairs(shadow_flag_pair):
    first = shadow_flag_pair(flag="new_x")
    second = shadow_flag_pair(flag="new_x")
    assert not first.get("/changed").matches()
    assert not second.get("/changed").matches()


def test_a_route_the_config_does_not_know(shadow_flag_pair):
    shadow_flag_pair(route="/api/nowhere/{id}")
"""


def test_the_config_names_the_store_and_every_pair_is_undone(inner: pytest.Pytester) -> None:
    """The config's `[control] flags` is found beside the config (as the proxy and
    `shadow flags` find it); two pairs on one flag end with its first value."""
    deploy = inner.path / "deploy"
    deploy.mkdir()
    (deploy / "shadow.toml").write_text(
        '[[endpoints]]\nroute = "/api/x/{id}"\n\n[control]\nflags = "../flags.json"\n'
    )
    flags = inner.path / "flags.json"
    seed(flags, False)
    inner.makepyfile(test_two=TWO_PAIRS)
    result = inner.runpytest("--shadow-config", "deploy/shadow.toml")
    reports = {r.nodeid.split("::")[-1]: r for r in result.reprec.getreports(  # type: ignore[attr-defined]
        "pytest_runtest_logreport") if r.when == "call"}  # fmt: skip
    # The app read the flips: both pairs saw the two code paths differ.
    assert reports["test_two_pairs"].passed, reports["test_two_pairs"].longreprtext
    failure = reports["test_a_route_the_config_does_not_know"]
    assert failure.failed and "is not a route of the config" in failure.longreprtext
    assert "Traceback" not in failure.longreprtext
    assert store(flags)["features"] == {"new_x": False}
    assert not (inner.path / "deploy" / "flags.json").exists()
