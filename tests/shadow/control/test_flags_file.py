"""The file flag store: round trips, malformed entries, broken files, concurrent writers."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shadow.config.control import RouteMode, check_mode
from shadow.control.file_store import FileFlagStore
from shadow.control.flags import (
    HISTORY_LIMIT,
    MAX_FILE_BYTES,
    Change,
    FlagState,
    open_store,
)
from shadow.control.redis_store import RedisFlagStore, hide_password
from shadow.errors import FlagStoreError
from tests.conftest import ROOT

CANARY = check_mode("canary", 25)


def _route_change(route: str, after: str, before: str | None = "shadow") -> Change:
    return Change.new("route", "alice", "ramp", route=route, flag="f", before=before, after=after)


def test_a_missing_file_is_an_empty_store(tmp_path: Path) -> None:
    store = FileFlagStore(str(tmp_path / "none.json"))
    assert asyncio.run(store.read({"a"})) == FlagState({}, {}, ())
    assert asyncio.run(store.features()) == {}
    assert asyncio.run(store.history()) == []
    assert not (tmp_path / "none.json").exists()  # reading creates nothing


def test_set_route_writes_the_record_the_flag_and_the_history(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    store = FileFlagStore(str(path))
    record = RouteMode("canary", 25, reverse=False, by="alice", why="ramp", at=1714640000.0)
    change = _route_change("/a/{id}", "canary 25%")
    asyncio.run(store.set_route("/a/{id}", record, "new_a", change))

    state = asyncio.run(store.read({"new_a", "other"}))
    assert state.routes == {"/a/{id}": record}
    assert state.features == {"new_a": True}
    assert state.problems == ()
    assert asyncio.run(store.history()) == [change]
    doc = json.loads(path.read_text())
    assert doc["routes"]["/a/{id}"] == record.to_json()
    assert doc["features"] == {"new_a": True}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    asyncio.run(store.set_route("/a/{id}", check_mode("shadow"), "new_a", change))
    assert asyncio.run(store.read({"new_a"})).features == {"new_a": False}  # not serving


def test_set_feature_round_trip_and_listing(tmp_path: Path) -> None:
    store = FileFlagStore(str(tmp_path / "flags.json"))
    on = Change.new("feature", "bob", "go", flag="new_backend", before=None, after="true")
    off = Change.new("feature", "bob", "stop", flag="old", before=None, after="false")
    asyncio.run(store.set_feature("new_backend", True, on))
    asyncio.run(store.set_feature("old", False, off))
    assert asyncio.run(store.read({"new_backend"})).features == {"new_backend": True}
    assert asyncio.run(store.features()) == {"new_backend": True, "old": False}
    assert [c.id for c in asyncio.run(store.history())] == [on.id, off.id]
    assert [c.id for c in asyncio.run(store.history(limit=1))] == [off.id]


def test_an_existing_files_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{}")
    path.chmod(0o640)
    store = FileFlagStore(str(path))
    asyncio.run(store.set_feature("x", True, Change.new("feature", "a", flag="x", after="true")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert json.loads(path.read_text())["features"] == {"x": True}


def test_string_values_parse_and_malformed_entries_are_skipped_with_a_problem(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(
        json.dumps(
            {
                "routes": {
                    "/good": {"mode": "candidate"},
                    "/bad": {"mode": "canary", "percent": 300},
                    "/odd": {"mode": "shadow", "color": "red"},
                },
                "features": {"off": "false", "on": "true", "weird": "maybe", "n": 0},
            }
        )
    )
    state = asyncio.run(FileFlagStore(str(path)).read({"off", "on", "weird", "n"}))
    assert state.features == {"off": False, "on": True, "n": False}
    assert state.routes == {"/good": RouteMode("candidate")}
    assert len(state.problems) == 3
    assert any(p.startswith("feature weird:") and "'maybe'" in p for p in state.problems)
    assert any(p.startswith("route /bad:") and "300" in p for p in state.problems)
    assert any(p.startswith("route /odd:") and "'color'" in p for p in state.problems)
    assert all("\n" not in p for p in state.problems)


def test_only_the_asked_features_are_read(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"features": {"a": True, "b": "nonsense"}}))
    state = asyncio.run(FileFlagStore(str(path)).read({"a"}))
    assert state.features == {"a": True}
    assert state.problems == ()


def test_a_syntax_error_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{\n  "features": {\n    "a": true,\n  }\n}\n')
    store = FileFlagStore(str(path))
    with pytest.raises(FlagStoreError) as err:
        asyncio.run(store.read({"a"}))
    text = str(err.value)
    assert text.startswith(f"flags file {path} is not valid JSON: ") and "(line 4)" in text
    assert "\n" not in text and err.value.exit_code == 8


def test_a_write_refuses_to_overwrite_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{not json")
    store = FileFlagStore(str(path))
    with pytest.raises(FlagStoreError, match="not valid JSON"):
        asyncio.run(store.set_feature("a", True, Change.new("feature", "a", flag="a")))
    assert path.read_text() == "{not json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "must hold a JSON object"),
        ('{"routes": []}', "'routes' must be an object"),
        ('{"history": {}}', "'history' must be a list"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_file_of_the_wrong_shape_is_an_error(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "flags.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(FlagStoreError, match=message):
        asyncio.run(FileFlagStore(str(path)).read(()))


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    with path.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(FlagStoreError, match="larger than"):
        asyncio.run(FileFlagStore(str(path)).read(()))


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.mkdir()  # a directory cannot be read as a file, whoever we are (even root)
    with pytest.raises(FlagStoreError, match=r"cannot read \(Is a directory\)"):
        asyncio.run(FileFlagStore(str(path)).read(()))


def test_the_history_keeps_the_last_1000_and_skips_malformed_entries(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    old = [Change(f"c{i}", float(i), "a", "", "feature", None, "x").to_json() for i in range(1000)]
    path.write_text(json.dumps({"history": [*old[:-1], {"id": 3}, old[-1]]}))
    store = FileFlagStore(str(path))
    assert len(asyncio.run(store.history())) == 1000  # the malformed one is skipped
    newest = Change.new("feature", "b", flag="x", after="true")
    asyncio.run(store.set_feature("x", True, newest))
    history = json.loads(path.read_text())["history"]
    assert len(history) == HISTORY_LIMIT
    # 1000 kept of 1002: the two oldest go, the malformed one is kept as written
    assert history[-1]["id"] == newest.id and history[0]["id"] == "c2"


def test_change_from_json_is_strict() -> None:
    change = _route_change("/a", "candidate")
    assert Change.from_json(change.to_json()) == change
    bad_ones: list[Any] = [[], {**change.to_json(), "at": "now"}, {**change.to_json(), "actor": 3}]
    for bad in bad_ones:
        with pytest.raises(ValueError):
            Change.from_json(bad)


_WRITER = """
import asyncio, sys
from shadow.control.file_store import FileFlagStore
from shadow.control.flags import Change
store = FileFlagStore(sys.argv[1])
async def main():
    for i in range(int(sys.argv[3])):
        name = f"{sys.argv[2]}_{i}"
        await store.set_feature(name, True, Change.new("feature", sys.argv[2], flag=name))
asyncio.run(main())
"""


def test_concurrent_writers_lose_no_change(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    per_writer = 40
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), name, str(per_writer)], cwd=ROOT
        )
        for name in ("w1", "w2", "w3")
    ]
    for writer in writers:
        assert writer.wait(120) == 0
    store = FileFlagStore(str(path))
    features = asyncio.run(store.features())
    assert len(features) == 3 * per_writer and all(features.values())
    history = asyncio.run(store.history())
    assert len(history) == 3 * per_writer
    assert {c.actor for c in history} == {"w1", "w2", "w3"}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".shadow-flags.")]
    assert leftovers == []


def test_concurrent_writers_in_threads_lose_no_change(tmp_path: Path) -> None:
    store = FileFlagStore(str(tmp_path / "flags.json"))

    async def many() -> None:
        await asyncio.gather(
            *(
                store.set_feature(f"t{i}", i % 2 == 0, Change.new("feature", "t", flag=f"t{i}"))
                for i in range(30)
            )
        )

    asyncio.run(many())
    features = asyncio.run(store.features())
    assert features == {f"t{i}": i % 2 == 0 for i in range(30)}


def test_a_symlinked_file_stays_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real" / "flags.json"
    target.parent.mkdir()
    link = tmp_path / "flags.json"
    link.symlink_to(target)
    store = open_store(str(link))
    asyncio.run(store.set_feature("new_x", True, Change.new("feature", "t", flag="new_x")))
    assert link.is_symlink() and target.is_file()
    assert asyncio.run(store.read({"new_x"})).features == {"new_x": True}


def test_a_swapped_symlink_is_followed(tmp_path: Path) -> None:
    """As a ConfigMap mount or `ln -sfn` updates the file: a new target, read and written."""
    for version, value in (("v1", True), ("v2", False)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "flags.json").write_text(
            f'{{"features": {{"f": {str(value).lower()}}}}}'
        )
    (tmp_path / "..data").symlink_to("v1")
    link = tmp_path / "flags.json"
    link.symlink_to(tmp_path / "..data" / "flags.json")
    store = open_store(str(link), polled=True)
    assert asyncio.run(store.read({"f"})).features == {"f": True}
    (tmp_path / "..next").symlink_to("v2")
    os.replace(tmp_path / "..next", tmp_path / "..data")
    assert asyncio.run(store.read({"f"})).features == {"f": False}
    asyncio.run(store.set_feature("g", True, Change.new("feature", "t", flag="g")))
    assert "g" in (tmp_path / "v2" / "flags.json").read_text()
    assert "g" not in (tmp_path / "v1" / "flags.json").read_text()


def test_an_empty_file_is_no_flags_to_writers_and_being_written_to_a_watcher(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(b"")
    assert asyncio.run(open_store(str(path)).read(set())).routes == {}
    with pytest.raises(FlagStoreError, match="empty"):
        asyncio.run(open_store(str(path), polled=True).read(set()))
    store = open_store(str(path))
    asyncio.run(store.set_feature("a", False, Change.new("feature", "t", flag="a")))
    assert asyncio.run(store.read({"a"})).features == {"a": False}


def test_open_store_chooses_by_the_spec(tmp_path: Path) -> None:
    relative = open_store("flags.json", str(tmp_path))
    assert isinstance(relative, FileFlagStore) and relative.path == str(tmp_path / "flags.json")
    absolute = open_store(str(tmp_path / "x.json"), "/elsewhere")
    assert isinstance(absolute, FileFlagStore) and absolute.path == str(tmp_path / "x.json")
    assert isinstance(open_store(""), FileFlagStore)
    assert open_store("").describe() == os.path.realpath("shadow-flags.json")
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"):
        store = open_store(url)
        assert isinstance(store, RedisFlagStore)
        asyncio.run(store.aclose())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cret@h:6379/0", "redis://user:***@h:6379/0"),
        ("rediss://h:6380/0?password=s3cret&ssl_cert_reqs=none",
         "rediss://h:6380/0?password=***&ssl_cert_reqs=none"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)  # fmt: skip
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert hide_password(url) == shown
    store = open_store(url)
    assert store.describe() == shown and "s3cret" not in store.describe()
    asyncio.run(store.aclose())
