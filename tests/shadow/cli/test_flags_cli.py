"""`shadow flags`: set, get, list, enable, disable, history on both stores; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from shadow.cli.flags_cmd import flags
from shadow.cli.main import _Group
from tests.conftest import free_port

# The group under main's error handling (ShadowError -> one line and its exit code),
# as `shadow flags` runs once main registers it.
ROOT_CLI: click.Group = _Group("shadow", commands={"flags": flags})

CONFIG = """
[control]
flags = "state/flags.json"
flag = "new_backend"

[[endpoints]]
route = "/api/analysis/{id}"
flag = "new_analysis"

[[endpoints]]
route = "/api/users"
mode = "canary"
percent = 5
reverse = false
"""


def shadow(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(ROOT_CLI, ["flags", *args], env=env, catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding shadow.toml (the default config), the current directory."""
    (tmp_path / "shadow.toml").write_text(CONFIG)
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHADOW_USER", "carol")
    return tmp_path


def _error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("shadow: error: ")
    return lines[0]


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_set_get_list_history_round_trip_on_the_file_store(project: Path) -> None:
    done = shadow("set", "/api/analysis/{id}", "canary", "--percent", "10", "--by", "alice",
                  "--why", "first users")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "/api/analysis/{id}: shadow -> canary 10%" in done.stdout
    assert "flag new_analysis = true" in done.stdout
    stored = json.loads((project / "state" / "flags.json").read_text())  # beside the config
    assert stored["features"] == {"new_analysis": True}
    record = stored["routes"]["/api/analysis/{id}"]
    assert record["mode"] == "canary" and record["percent"] == 10 and record["by"] == "alice"
    assert record["why"] == "first users" and record["rolled_back"] is False and record["at"] > 0

    got = _json(shadow("get", "/api/analysis/{id}", "--json"))
    assert got["label"] == "canary 10%" and got["source"] == "store"
    assert got["flag"] == "new_analysis" and got["flag_value"] is True
    text = shadow("get", "/api/analysis/{id}").stdout
    assert "canary 10%" in text and "new_analysis = true" in text and "first users" in text

    listed = _json(shadow("list", "--json"))
    rows = {r["route"]: r for r in listed["routes"]}
    assert set(rows) == {"/api/analysis/{id}", "/api/users"}
    assert rows["/api/users"]["label"] == "canary 5%" and rows["/api/users"]["source"] == "config"
    assert rows["/api/users"]["flag"] == "api_users" and rows["/api/users"]["flag_value"] is None
    assert rows["/api/analysis/{id}"]["by"] == "alice" and rows["/api/analysis/{id}"]["at"]
    assert listed["store"] == str(project / "state" / "flags.json")
    plain = shadow("list").stdout
    assert "/api/analysis/{id}" in plain and "canary 10%" in plain and "unset" in plain

    history = _json(shadow("history", "--json"))
    assert [(h["actor"], h["route"], h["before"], h["after"]) for h in history] == [
        ("alice", "/api/analysis/{id}", "shadow", "canary 10%")
    ]
    assert "alice" in shadow("history").stdout


def test_the_config_reverse_is_the_default_and_the_option_wins(project: Path) -> None:
    assert shadow("set", "/api/users", "candidate").exit_code == 0
    assert _json(shadow("get", "/api/users", "--json"))["reverse"] is False
    assert shadow("set", "/api/users", "candidate", "--reverse").exit_code == 0
    assert _json(shadow("get", "/api/users", "--json"))["reverse"] is True
    assert shadow("set", "/api/analysis/{id}", "candidate", "--no-reverse").exit_code == 0
    assert _json(shadow("get", "/api/analysis/{id}", "--json"))["reverse"] is False


def test_enable_disable_and_the_default_actor(project: Path) -> None:
    assert "new_backend: unset -> true" in shadow("enable", "new_backend").stdout
    assert _json(shadow("get", "new_backend", "--json")) == {"flag": "new_backend", "value": True}
    off = shadow("disable", "feature:new_backend", "--why", "incident 42")
    assert "new_backend: true -> false" in off.stdout
    assert shadow("get", "new_backend").stdout.strip() == "new_backend = false"
    listed = shadow("list")
    assert "new_backend = false  (gates every route" in listed.stdout
    history = _json(shadow("history", "--json", "--limit", "1"))
    assert len(history) == 1
    assert history[0]["actor"] == "carol" and history[0]["reason"] == "incident 42"
    assert (history[0]["before"], history[0]["after"]) == ("true", "false")
    assert history[0]["kind"] == "feature" and history[0]["flag"] == "new_backend"


def test_setting_a_serving_mode_back_turns_the_flag_off(project: Path) -> None:
    shadow("set", "/api/analysis/{id}", "candidate")
    back = shadow("set", "/api/analysis/{id}", "legacy", "--why", "by hand")
    assert "candidate -> legacy" in back.stdout and "flag new_analysis = false" in back.stdout
    assert shadow("get", "new_analysis").stdout.strip() == "new_analysis = false"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/api/nope", "shadow"],
         "unknown route '/api/nope' (known: /api/analysis/{id}, /api/users); "
         'declare it as [[endpoints]] route = "/api/nope" in shadow.toml'),
        (["/api/users", "fast"], "unknown mode 'fast'"),
        (["/api/users", "canary"], "mode canary needs a percentage"),
        (["/api/users", "canary", "--percent", "200"], "must be a whole number in 0-100"),
        (["/api/users", "canary", "--percent", "ten"], "is not a number in 0-100"),
        (["/api/users", "legacy", "--percent", "10"], "goes with mode canary only"),
    ],
)  # fmt: skip
def test_bad_routes_modes_and_percentages_exit_2(
    project: Path, args: list[str], message: str
) -> None:
    result = shadow("set", *args)
    assert result.exit_code == 2
    assert message in _error_line(result)
    assert not (project / "state" / "flags.json").exists()  # nothing written


def test_a_bad_flag_name_exits_2(project: Path) -> None:
    result = shadow("enable", "no spaces allowed")
    assert result.exit_code == 2 and "must be 1-128 letters" in _error_line(result)


def test_a_route_seen_in_the_db_may_be_set(project: Path) -> None:
    from tests.store_builder import Call, write_store

    write_store(project / "seen.duckdb", [Call("GET /api/seen/{id}", {"a": 1}, {"a": 1})])
    refused = shadow("set", "/api/seen/{id}", "shadow")
    assert refused.exit_code == 2 and "unknown route '/api/seen/{id}'" in _error_line(refused)
    done = shadow("set", "/api/seen/{id}", "shadow", "--db", "seen.duckdb")
    assert done.exit_code == 0, done.output
    (project / "seen.duckdb").rename(project / "shadow.duckdb")  # the default --db
    assert shadow("set", "/api/seen/{id}", "candidate").exit_code == 0
    row = _json(shadow("get", "/api/seen/{id}", "--json"))
    assert row["label"] == "candidate" and row["flag"] == "api_seen_id"
    # A route with a record in the flag store is known from then on, and listed.
    (project / "shadow.duckdb").unlink()
    assert shadow("set", "/api/seen/{id}", "legacy").exit_code == 0
    assert "/api/seen/{id}" in {r["route"] for r in _json(shadow("list", "--json"))["routes"]}


def test_a_broken_flags_file_exits_8_in_one_line(project: Path) -> None:
    path = project / "state" / "flags.json"
    path.write_text('{"features": {\n "a": tru }')
    for args in (["list"], ["get", "a"], ["enable", "a"], ["history"],
                 ["set", "/api/users", "shadow"]):  # fmt: skip
        result = shadow(*args)
        assert result.exit_code == 8, args
        line = _error_line(result)
        assert f"flags file {path} is not valid JSON" in line and "(line 2)" in line
    assert path.read_text() == '{"features": {\n "a": tru }'  # never overwritten


def test_malformed_entries_are_warned_about_and_skipped(project: Path) -> None:
    path = project / "state" / "flags.json"
    path.write_text(json.dumps({"features": {"new_analysis": "maybe", "x": "false"}}))
    result = shadow("list", "--json")
    assert result.exit_code == 0
    assert "feature new_analysis: flag value 'maybe' is neither true nor false (skipped)" in (
        result.stderr
    )
    out = json.loads(result.stdout)
    assert out["features"] == {"x": False} and len(out["problems"]) == 1


def test_a_missing_folder_is_named(project: Path) -> None:
    (project / "state").rmdir()
    result = shadow("enable", "x")
    assert result.exit_code == 8
    assert f"folder {project / 'state'} does not exist" in _error_line(result)


def test_flags_option_and_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no shadow.toml: no routes, the default file here
    assert "no routes" in shadow("list").stdout
    refused = shadow("set", "/a", "shadow")
    assert refused.exit_code == 2 and "(known: none)" in _error_line(refused)
    assert shadow("enable", "x", "--by", "dave").exit_code == 0
    assert json.loads((tmp_path / "shadow-flags.json").read_text())["features"] == {"x": True}
    assert shadow("enable", "y", "--flags", "other.json").exit_code == 0
    assert json.loads((tmp_path / "other.json").read_text())["features"] == {"y": True}


@pytest.mark.integration
def test_the_redis_store_through_the_cli(project: Path, redis_url: str) -> None:
    done = shadow("set", "/api/analysis/{id}", "canary", "--percent", "20", "--flags", redis_url)
    assert done.exit_code == 0, done.output
    assert redis_url in done.stdout
    assert shadow("disable", "new_backend", "--flags", redis_url).exit_code == 0
    listed = _json(shadow("list", "--json", "--flags", redis_url))
    rows = {r["route"]: r for r in listed["routes"]}
    assert rows["/api/analysis/{id}"]["label"] == "canary 20%"
    assert rows["/api/analysis/{id}"]["flag_value"] is True
    assert listed["features"] == {"new_backend": False}
    history = _json(shadow("history", "--json", "--flags", redis_url))
    assert [h["kind"] for h in history] == ["route", "feature"]
    assert not (project / "state" / "flags.json").exists()  # nothing went to the file


def test_an_unreachable_redis_exits_8_in_one_line(project: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = shadow("list", "--flags", url)
    assert result.exit_code == 8
    line = _error_line(result)
    assert "unreachable" in line and "s3cret" not in result.output


def test_a_long_why_is_refused_and_the_file_stays_writable(project: Path) -> None:
    import asyncio

    from shadow.control.flags import MAX_FILE_BYTES, Change, open_store

    long = shadow("enable", "x", "--why", "w" * 2001)
    assert long.exit_code == 2 and "--why: at most 2000 characters" in _error_line(long)
    # Changes that fill the history (long reasons, written by other tools) never make
    # the file too large to change again: the oldest history goes first, so the kill
    # switch stays writable.
    store = open_store(str(project / "state" / "flags.json"))

    async def fill() -> None:
        for i in range(50):  # 100 KB each: more than the file may hold
            await store.set_feature(f"f{i}", True, Change.new("feature", "t", "w" * 100_000))

    asyncio.run(fill())
    assert (project / "state" / "flags.json").stat().st_size <= MAX_FILE_BYTES
    assert shadow("disable", "new_backend", "--why", "incident").exit_code == 0
    assert _json(shadow("get", "new_backend", "--json")) == {"flag": "new_backend", "value": False}


def test_a_shared_flag_stays_true_while_another_route_is_served(project: Path) -> None:
    (project / "shadow.toml").write_text(
        '[[endpoints]]\nroute = "/api/a"\nflag = "new_orders"\n'
        '[[endpoints]]\nroute = "/api/b"\nflag = "new_orders"\n'
    )
    assert shadow("set", "/api/a", "candidate").exit_code == 0
    assert shadow("set", "/api/b", "candidate").exit_code == 0
    back = shadow("set", "/api/a", "shadow", "--why", "a only")
    assert back.exit_code == 0 and "stays true" in back.stdout and "/api/b" in back.stdout
    assert _json(shadow("get", "new_orders", "--json"))["value"] is True
    rows = {r["route"]: r for r in _json(shadow("list", "--json"))["routes"]}
    assert (rows["/api/a"]["runs"], rows["/api/b"]["runs"]) == ("shadow", "candidate")
    assert shadow("set", "/api/b", "legacy").exit_code == 0  # the last one: now false
    assert _json(shadow("get", "new_orders", "--json"))["value"] is False
    rows = {r["route"]: r for r in _json(shadow("list", "--json"))["routes"]}
    assert rows["/api/b"]["runs"] == "legacy"


def test_reasons_and_names_are_kept_on_one_line(project: Path) -> None:
    assert shadow("enable", "x", "--why", "first\nsecond\u2028third", "--by", "a\rb").exit_code == 0
    [change] = _json(shadow("history", "--json"))[-1:]
    assert change["reason"] == "first second third" and change["actor"] == "a b"


def test_no_stays_true_claim_for_a_flag_already_pulled(project: Path) -> None:
    (project / "shadow.toml").write_text(
        '[[endpoints]]\nroute = "/api/a"\nflag = "shared"\n'
        '[[endpoints]]\nroute = "/api/b"\nflag = "shared"\n'
    )
    assert shadow("set", "/api/a", "candidate").exit_code == 0
    assert shadow("disable", "shared", "--why", "incident").exit_code == 0
    out = shadow("set", "/api/b", "shadow")
    assert out.exit_code == 0 and "stays true" not in out.stdout
    assert _json(shadow("get", "shared", "--json"))["value"] is False
