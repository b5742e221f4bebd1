"""Adversarial review of shadow.store.shards: several stores read as one.

Tests that fail expose a defect (see the docstring of each); the others pin down
behaviour that held under the same attack.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from reports.context import build_context
from shadow.config.loader import parse_config
from shadow.errors import StoreError
from shadow.review import gate
from shadow.store import outcomes, shards
from shadow.store.schema import migrate
from shadow.store.writer import reading
from tests.conftest import ROOT
from tests.store_builder import Call, CutoverCall, event, write_cutover_store, write_store

CONFIG: dict[str, Any] = {
    "accepted": [{"endpoint": "GET /api/b/*", "path": "$.engine", "reason": "names itself"}]
}


# --- helpers -------------------------------------------------------------------------------


def _calls(n: int) -> list[Call]:
    """Matches, real differences, noise (the secondary moves too), accepted ones, errors;
    two runs, modes and servers of a cutover."""
    out: list[Call] = []
    for i in range(n):
        ep = ["GET /api/a/{id}", "GET /api/b/{id}", "GET /api/c"][i % 3]
        base = {"id": i % 5, "ts": "2024-01-01", "engine": "legacy", "n": [1, 2, 3]}
        cand: Any = dict(base)
        sec = dict(base)
        roll = (i * 7919) % 20
        if roll < 5:
            cand["n"] = [1, 2, 4]
        elif roll < 10:
            cand["ts"] = f"2024-01-0{1 + i % 8}"
            sec["ts"] = f"2024-02-0{1 + i % 8}"
        elif roll < 12:
            cand["engine"] = "fastapi"
        elif roll == 12:
            cand = "error"
        out.append(
            CutoverCall(
                ep, base, cand, secondary=sec, run_id="r1" if i % 4 else "r2",
                mode="shadow" if i % 5 else "canary", at=float(i // 3),
            )
        )  # fmt: skip
    return out


def _one_store(path: Path) -> str:
    events = [
        event("flag_change", 3.0, "/api/a/{id}", before="shadow", after="canary 10"),
        event("rollback", 9.0, "/api/a/{id}", before="canary 10", after="shadow", reason="x"),
        event("flag_change", 12.0, "/api/c", run_id="r2", before="shadow", after="canary 5"),
    ]
    db = write_cutover_store(path, _calls(240), events, config=CONFIG)
    with duckdb.connect(db) as con:  # a settled run: 9 requests shed or lost besides its rows
        con.execute(
            "UPDATE runs SET exchanges = (SELECT count(*) FROM exchanges e "
            "WHERE e.run_id = runs.run_id), requests_shed = 7, requests_lost = 2, "
            "copies_dropped = 7, ended_at = started_at + INTERVAL 60 SECOND, "
            'options = \'{"listen": "x"}\''
        )
        con.execute("UPDATE runs SET requests = exchanges + 9")
    return db


def _bucket(text: str, k: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % k


def _split(one: str, folder: Path, k: int, by: str) -> list[str]:
    """Copies of `one`, each keeping some of its exchanges (with their differences, noise
    evidence and conversations) and events; the runs' counts split so that they sum up.

    `by`: "endpoint" (every exchange of an endpoint in one shard) or "time" (by ts).
    """
    folder.mkdir()
    with duckdb.connect(one, read_only=True) as con:
        rows = con.execute("SELECT exchange_id, run_id, endpoint, ts FROM exchanges").fetchall()
        order = sorted(rows, key=lambda r: (r[3], r[0]))
    if by == "endpoint":
        shard_of = {(x, r): _bucket(ep, k) for x, r, ep, _ in rows}
    else:
        shard_of = {(x, r): i * k // len(order) for i, (x, r, _, _) in enumerate(order)}
    paths = []
    for n in range(k):
        path = folder / f"shard-{n}.duckdb"
        shutil.copyfile(one, path)
        mine = [(x, r) for (x, r), s in shard_of.items() if s == n]
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TEMP TABLE keep (exchange_id VARCHAR, run_id VARCHAR)")
            if mine:
                con.executemany("INSERT INTO keep VALUES (?, ?)", mine)
            for table in ("exchanges", "differences", "noise_differences", "conversations"):
                con.execute(
                    f"DELETE FROM {table} WHERE (exchange_id, run_id) NOT IN (SELECT * FROM keep)"
                )
            events = con.execute("SELECT event_id FROM events").fetchall()
            gone = [e for (e,) in events if _bucket(e, k) != n]
            if gone:
                con.executemany("DELETE FROM events WHERE event_id = ?", [[e] for e in gone])
            con.execute(
                "UPDATE runs SET exchanges = (SELECT count(*) FROM exchanges e "
                "WHERE e.run_id = runs.run_id)"
            )
            if n:  # the run's shed and lost requests are counted in the first shard only
                con.execute(
                    "UPDATE runs SET requests = exchanges, requests_shed = 0, requests_lost = 0, "
                    "copies_dropped = 0, rows_spilled = 0, worker_restarts = 0"
                )
            else:
                con.execute("UPDATE runs SET requests = exchanges + 9")
        paths.append(str(path))
    return paths


def _sorted(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def _figures(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table in ("exchanges", "differences", "noise_differences", "events", "run_accepted"):
        out[table] = _sorted(con, f"SELECT * FROM {table}")
    out["runs"] = con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    for run in (None, "r1", "r2"):
        lit = "NULL" if run is None else f"'{run}'"
        for macro in (
            "shadow_exchange_outcomes", "shadow_difference_outcomes", "shadow_noise_fields",
            "shadow_endpoint_outcomes",
        ):  # fmt: skip
            out[f"{macro}({lit})"] = _sorted(con, f"SELECT * FROM {macro}({lit})")
        out[f"gate({run})"] = gate.fetch_rows(con, run)
        ctx = dataclasses.asdict(build_context(con, "db", run))
        ctx.pop("generated_at", None)
        out[f"report({run})"] = ctx
    return out


# --- what held -----------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "by"), [(3, "endpoint"), (4, "time"), (7, "time")])
def test_any_split_of_one_store_reads_back_as_that_store(tmp_path: Path, k: int, by: str) -> None:
    """Noise statistics (per endpoint, over every exchange), accepted entries, events,
    runs and the report's whole context: the shards give the one store's numbers."""
    one = _one_store(tmp_path / "one.duckdb")
    _split(one, tmp_path / "shards", k, by)
    with reading(one) as a, reading(str(tmp_path / "shards")) as b:
        fa, fb = _figures(a), _figures(b)
        verdicts = outcomes.verdict_counts(a, None)
    assert {"match", "differ", "candidate_error"} <= set(verdicts), verdicts
    noise = [r for r in fa["shadow_difference_outcomes(NULL)"] if "noise" in r]
    assert noise, "the store has noise judged by its statistics: the comparison means something"
    for key in fa:
        assert fa[key] == fb[key], key


def test_the_same_file_twice_is_read_once(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    write_store(folder / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    write_store(folder / "b.duckdb", [Call("GET /b/{id}", {"x": 1}, {"x": 1}, run_id="r2")])
    os.symlink(folder / "a.duckdb", folder / "c.duckdb")
    os.symlink(folder, tmp_path / "link")
    spec = f"{tmp_path}/*/*.duckdb"  # s/a, s/b, s/c (-> a), link/a, link/b, link/c
    assert len(shards.expand(spec)) == 2
    with reading(spec) as con:
        assert con.execute("SELECT count(*) FROM exchanges").fetchone() == (2,)


def test_paths_with_quotes_spaces_and_brackets(tmp_path: Path) -> None:
    folder = tmp_path / 'it\'s a "shard" [dir] *'
    folder.mkdir()
    write_store(folder / "o'ne.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    write_store(folder / 'tw"o.duckdb', [Call("GET /b/{id}", {"x": 1}, {"x": 1}, run_id="r2")])
    with reading(str(folder)) as con:
        assert con.execute("SELECT count(*) FROM exchanges").fetchone() == (2,)


def test_too_many_files_is_one_line(tmp_path: Path) -> None:
    for i in range(shards.MAX_SHARDS + 1):
        (tmp_path / f"s{i:04d}.duckdb").touch()
    with pytest.raises(StoreError, match=r"matches 1025 files \(at most 1024\)"):
        shards.expand(str(tmp_path / "*.duckdb"))


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_newer_shard_is_refused_and_nothing_is_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    write_store(folder / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    with duckdb.connect(str(folder / "b.duckdb")) as con:
        migrate(con)
        con.execute("UPDATE shadow_meta SET value = '99' WHERE key = 'schema_version'")
        con.execute("CREATE TABLE from_the_future (x INTEGER)")
    before = _snapshot(folder)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    with (
        pytest.raises(StoreError, match=r"b\.duckdb has 99, newer than this shadow"),
        reading(str(folder)),
    ):
        pass
    assert _snapshot(folder) == before, "nothing written to (or left beside) a shard"
    assert os.listdir(temp) == [], "the temporary merged store is removed"


def test_a_run_still_going_in_one_shard_is_still_going(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    for name in ("a", "b"):
        write_store(folder / f"{name}.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 1})])
    with duckdb.connect(str(folder / "a.duckdb")) as con:
        con.execute("UPDATE exchanges SET exchange_id = 'other'")
        con.execute("UPDATE runs SET requests = 1, ended_at = started_at + INTERVAL 1 MINUTE")
    with duckdb.connect(str(folder / "b.duckdb")) as con:  # still going: requests not settled
        con.execute("UPDATE runs SET requests = NULL, ended_at = NULL")
    with reading(str(folder)) as con:
        assert con.execute("SELECT requests, ended_at, exchanges FROM runs").fetchall() == [
            (None, None, 0)
        ]


# --- defects -------------------------------------------------------------------------------

_LIVE_WRITER = r"""
import sys, time
from shadow.config.loader import parse_config
from shadow.pipeline.evaluate import evaluate
from shadow.store.writer import Run, StoreWriter
from tests.store_builder import Call, exchange

writer = StoreWriter(sys.argv[1])
writer.run_changed(Run("live", "sink", time.time()))
config = parse_config({})
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < end:  # as the pipeline: a batch about every 0.1 s
    call = Call("GET /live/{id}", {"x": 1}, {"x": 1}, run_id="live")
    result = evaluate(exchange(i, call), config, "live", 65536, "differ")
    writer.add(result.row, result.differences, result.noise)
    writer.write(writer.detach())
    i += 1
    time.sleep(0.1)
writer.release()
"""


def _live_writer(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_WRITER, str(path), str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # it holds the file now, as a live sink's writer does
    return proc


def test_shards_of_a_live_writer_are_read_while_it_writes(tmp_path: Path) -> None:
    """Found in review, fixed since (the test now passes).

    the main use (`shadow report --db shards/` while the sinks run) fails.

    merge_into ATTACHes inside the merge's transaction; the first ATTACH of a shard that
    a live writer holds fails with a lock error, which aborts the transaction, so the
    retry loop in `_attach` only meets "Current transaction is aborted" and gives up at
    once ("cannot merge 2 stores: TransactionContext Error ..."), without waiting for the
    writer to let go. One shard read alone (`reading(file)`) works the same moment.
    """
    folder = tmp_path / "s"
    folder.mkdir()
    write_store(folder / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    proc = _live_writer(folder / "b.duckdb", 20)
    try:
        with reading(str(folder / "b.duckdb"), wait=10) as con:  # one file: fine
            assert con.execute("SELECT count(*) FROM exchanges").fetchone()[0] >= 1
        time.sleep(0.5)  # the writer holds it again
        with reading(str(folder), wait=10) as con:
            n = con.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        assert n >= 2
    finally:
        proc.kill()
        proc.wait(10)


_HOLDER = r"""
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_shard_locked_for_good_is_named_in_one_clear_line(tmp_path: Path) -> None:
    """Found in review, fixed since (the test now passes).

    a shard held by a writer that never lets go (another tool, a stuck
    process) gives "cannot merge 2 stores: TransactionContext Error: Current
    transaction is aborted (please ROLLBACK)" at once instead of waiting `wait` seconds
    and naming the locked file (as `reading(file)` does)."""
    folder = tmp_path / "s"
    folder.mkdir()
    write_store(folder / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    write_store(folder / "b.duckdb", [Call("GET /b/{id}", {"x": 1}, {"x": 2}, run_id="r2")])
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder / "b.duckdb"), "30"], stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with (
            pytest.raises(StoreError, match=r"b\.duckdb is locked") as single,
            reading(str(folder / "b.duckdb"), wait=1.0),
        ):
            pass
        t0 = time.monotonic()
        with pytest.raises(StoreError) as merged, reading(str(folder), wait=1.0):
            pass
        waited = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait(10)
    assert "locked" in str(single.value)
    assert "b.duckdb is locked" in str(merged.value), str(merged.value)
    assert "Transaction" not in str(merged.value)
    assert waited >= 0.9, "the lock is waited for, as for one file"
    assert not [n for n in os.listdir(folder) if ".read-request" in n]


def test_a_file_that_is_not_duckdb_at_all_is_named(tmp_path: Path) -> None:
    """Found in review, fixed since (the test now passes).

    a `.duckdb` that is not a DuckDB file (truncated copy, a text file) gives
    "cannot merge 2 stores: TransactionContext Error: Current transaction is aborted"
    instead of naming it ("b.duckdb is not a DuckDB database", as one file read alone)."""
    write_store(tmp_path / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    (tmp_path / "b.duckdb").write_text("not a database\n" * 200)
    with (
        pytest.raises(StoreError, match=r"b\.duckdb is not a DuckDB database"),
        reading(str(tmp_path / "b.duckdb")),
    ):
        pass
    with pytest.raises(StoreError) as merged, reading(str(tmp_path)):
        pass
    assert "b.duckdb" in str(merged.value), str(merged.value)
    assert "Transaction" not in str(merged.value), str(merged.value)


def test_exchange_ids_reused_across_shards_do_not_cross_wire_verdicts(tmp_path: Path) -> None:
    """Found in review (since fixed: the merge now refuses the clash): merging
    did not check that (exchange_id, run_id) is unique across shards.

    Replays write keys `<run>-<index>` (shadow/sources/replay.py), so two replays given
    one --run-id, each into its own shard (a replay split over machines), reuse every
    id. The outcome macros join differences to exchanges by (exchange_id, run_id): a
    match whose only difference is accepted (tolerated) in shard a becomes "differ"
    because shard b's exchange of the same id has a real difference. Here the shards
    hold different endpoints, so no figure of one may depend on the other; merged, the
    verdicts were silently wrong ({"differ": 2}).
    """
    folder = tmp_path / "s"
    folder.mkdir()
    config = {"accepted": [{"endpoint": "GET /a/*", "path": "$.engine", "reason": "named"}]}
    a = write_store(
        folder / "a.duckdb", [Call("GET /a/{id}", {"engine": "o"}, {"engine": "n"}, run_id="R")],
        config=config,
    )  # fmt: skip
    b = write_store(
        folder / "b.duckdb", [Call("GET /b/{id}", {"n": 1}, {"n": 2}, run_id="R")], config=config
    )
    alone: dict[str, int] = {}
    for path in (a, b):
        with reading(path) as con:
            for verdict, n in outcomes.verdict_counts(con, None).items():
                alone[verdict] = alone.get(verdict, 0) + n
    assert alone == {"match": 1, "differ": 1}
    try:
        with reading(str(folder)) as con:
            merged = outcomes.verdict_counts(con, None)
    except StoreError as exc:  # refusing the clash, in one line, is right too
        assert "R-x00000" in str(exc) and "more than one store" in str(exc)
        return
    assert merged == alone


def test_accepted_entries_that_differ_between_shards_are_all_kept(tmp_path: Path) -> None:
    """Held (as documented: identical entries kept once): entries that differ are all
    kept, so a shard's entries also judge the other shards' exchanges of the run."""
    folder = tmp_path / "s"
    folder.mkdir()
    cfg_a = {"accepted": [{"endpoint": "GET /a/*", "path": "$.engine", "reason": "a"}]}
    write_store(folder / "a.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 1})], config=cfg_a)
    cfg_b = {"accepted": [{"endpoint": "GET /b/*", "path": "$.n", "reason": "b"}]}
    write_store(folder / "b.duckdb", [Call("GET /b/{id}", {"x": 1}, {"x": 1})], config=cfg_b)
    with duckdb.connect(str(folder / "b.duckdb")) as con:
        con.execute("UPDATE exchanges SET exchange_id = 'b-0'")
    with reading(str(folder), accepted=None) as con:
        rows = con.execute("SELECT entry, endpoint FROM run_accepted ORDER BY 2").fetchall()
    assert rows == [(1, "GET /a/*"), (1, "GET /b/*")]
    assert parse_config(cfg_a).accepted  # (the config parses: the rows are real entries)


_UNDER_LIMIT = r"""
import os, resource, sys
from shadow.store.writer import reading
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), hard))
print("fds open before:", len(os.listdir("/proc/self/fd")), file=sys.stderr)
with reading(sys.argv[1]) as con:
    print(con.execute("SELECT count(*) FROM exchanges").fetchone()[0])
"""


def test_many_shards_merge_within_a_modest_open_file_limit(tmp_path: Path) -> None:
    """Found in review (low; came with the fix that attaches every shard at once): the merge now
    keeps every shard attached (one open file each) until the copy ends, so it needs as
    many file descriptors as there are shards. Under the common soft limit of 1024,
    --db naming ~1000 shards (MAX_SHARDS allows 1024) fails with "Too many open files";
    here the same at scale: 60 shards under a limit of 64. Merging shard by shard (as
    the first version did) needs a handful whatever their number."""
    folder = tmp_path / "s"
    folder.mkdir()
    src = write_store(tmp_path / "src.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 2})])
    for i in range(60):
        dst = folder / f"s{i:02d}.duckdb"
        shutil.copyfile(src, dst)
        with duckdb.connect(str(dst)) as con:
            for table in ("exchanges", "differences"):
                con.execute(f"UPDATE {table} SET exchange_id = 'x{i}'")
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_LIMIT, str(folder), "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.strip() == "60"
