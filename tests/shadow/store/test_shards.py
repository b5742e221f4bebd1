"""shadow.store.shards: several stores read as one give exactly one merged store's numbers."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from reports.context import build_context
from shadow.config.loader import parse_config
from shadow.errors import StoreError
from shadow.pipeline.evaluate import evaluate
from shadow.review import gate
from shadow.review.export import export_tables
from shadow.review.triage import suggest_rules
from shadow.store import shards
from shadow.store.rows import AcceptedRow
from shadow.store.schema import migrate
from shadow.store.writer import Run, StoreWriter, finish_run, reading
from tests.store_builder import ERROR, T0, Call, exchange

CONFIG: dict[str, Any] = {
    "accepted": [
        {"endpoint": "GET /api/b/*", "path": "$.engine", "reason": "the rewrite names itself"}
    ]
}


def _calls(n: int, seed: int = 7) -> list[Call]:
    """A mix of matches, real differences, noise (secondary differs too) and errors."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ep = rnd.choice(["GET /api/a/{id}", "GET /api/b/{id}", "GET /api/c"])
        base = {"id": i % 5, "ts": "2024-01-01", "engine": "legacy", "n": [1, 2, 3]}
        cand = dict(base)
        sec = None
        roll = rnd.random()
        if roll < 0.25:
            cand["n"] = [1, 2, 4]  # a real difference
        elif roll < 0.45:
            cand["ts"] = sec_ts = f"2024-01-0{1 + i % 8}"  # noise: the secondary moves too
            sec = dict(base, ts=sec_ts + "x")
        elif roll < 0.55:
            cand["engine"] = "fastapi"  # accepted by the config
        elif roll < 0.6:
            cand = ERROR  # type: ignore[assignment]
        out.append(Call(ep, base, cand, secondary=sec, run_id="r1" if i % 7 else "r2"))
    return out


def _write(path: Path, calls: list[tuple[int, Call]], restarts: int = 0) -> str:
    """One store holding `calls` (global indexes keep exchange ids unique across shards)."""
    cfg = parse_config(CONFIG)
    writer = StoreWriter(str(path))
    for n, run_id in enumerate(["r1", "r2"]):
        writer.run_changed(Run(run_id, "proxy", T0 + 3600 * n, "http://p.test", "http://c.test"))
        writer.add_accepted(
            [
                AcceptedRow(run_id, i + 1, a.endpoint, a.path, a.kind, a.reason)
                for i, a in enumerate(cfg.accepted)
            ]
        )
    for i, call in calls:
        result = evaluate(exchange(i, call), cfg, call.run_id, 64 * 1024, "differ")
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    writer.release()
    for run_id in ("r1", "r2"):
        seen = sum(1 for _, c in calls if c.run_id == run_id)
        finish_run(str(path), run_id, requests=seen + 2, shed=2, restarts=restarts)
    with duckdb.connect(str(path)) as con:  # ended when it was written: the same in every file
        con.execute("UPDATE runs SET ended_at = started_at + INTERVAL 60 SECOND")
    return str(path)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str]:
    """(one store with everything, a directory of three shards holding the same rows)."""
    calls = list(enumerate(_calls(120)))
    one = _write(tmp_path / "one.duckdb", calls)
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(3):
        # Each shard counted 2 shed requests per run: the whole store counts 6.
        _write(folder / f"sink-{k}.duckdb", [c for c in calls if c[0] % 3 == k])
    with duckdb.connect(one) as con:
        con.execute(
            "UPDATE runs SET requests = requests + 4, requests_shed = 6, copies_dropped = 6"
        )
    return one, str(folder)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def test_merged_shards_give_the_one_stores_numbers(stores: tuple[str, str], tmp_path: Path) -> None:
    one, folder = stores
    accepted = parse_config(CONFIG).accepted
    for spec in (folder, os.path.join(folder, "sink-*.duckdb")):
        with reading(one, accepted=accepted) as a, reading(spec, accepted=accepted) as b:
            for run in (None, "r1", "r2"):
                assert gate.fetch_rows(a, run) == gate.fetch_rows(b, run)
            for macro in ("shadow_exchange_outcomes(NULL)", "shadow_difference_outcomes(NULL)"):
                assert _rows(a, f"SELECT * FROM {macro}") == _rows(b, f"SELECT * FROM {macro}")
            runs = "SELECT * FROM runs ORDER BY run_id"
            assert a.execute(runs).fetchall() == b.execute(runs).fetchall()
            ctx_a = dataclasses.asdict(build_context(a, "db"))
            ctx_b = dataclasses.asdict(build_context(b, "db"))
            ctx_a.pop("generated_at", None)
            ctx_b.pop("generated_at", None)
            assert ctx_a == ctx_b
            for kind in ("one", "many"):
                export_tables(a if kind == "one" else b, str(tmp_path / kind))
    assert suggest_rules(one, None, accepted) == suggest_rules(folder, None, accepted)
    names = sorted(os.listdir(tmp_path / "one"))
    assert names == sorted(os.listdir(tmp_path / "many")) and "endpoint_outcomes.parquet" in names
    for name in names:
        ta = pq.read_table(tmp_path / "one" / name).to_pylist()
        tb = pq.read_table(tmp_path / "many" / name).to_pylist()
        assert sorted(ta, key=repr) == sorted(tb, key=repr), name


def test_the_numbers_are_not_trivially_equal(stores: tuple[str, str]) -> None:
    """The comparison above means something: the store has every kind of outcome."""
    _, folder = stores
    with reading(folder) as con:
        verdicts = dict(
            con.execute(
                "SELECT verdict, count(*) FROM shadow_exchange_outcomes(NULL) GROUP BY ALL"
            ).fetchall()
        )
        runs = con.execute("SELECT run_id, requests, requests_shed FROM runs ORDER BY 1").fetchall()
    assert {"match", "differ", "candidate_error"} <= set(verdicts)
    assert sum(verdicts.values()) == 120
    assert runs[0][2] == 6 and runs[0][1] == sum(1 for c in _calls(120) if c.run_id == "r1") + 6


def test_a_glob_matching_nothing_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"matches no file"):
        shards.expand(str(tmp_path / "nothing-*.duckdb"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"holds no \*\.duckdb file"):
        shards.expand(str(tmp_path / "empty"))


def test_stores_of_different_schema_versions_are_refused(tmp_path: Path) -> None:
    good = _write(tmp_path / "a.duckdb", [(0, _calls(1)[0])])
    old = tmp_path / "b.duckdb"
    with duckdb.connect(str(old)) as con:
        migrate(con)
        con.execute("UPDATE shadow_meta SET value = '7' WHERE key = 'schema_version'")
    with (
        pytest.raises(StoreError, match=r"different schema versions: .*b\.duckdb has 7"),
        reading(str(tmp_path / "*.duckdb")),
    ):
        pass
    assert os.path.exists(good)  # nothing is written to a shard


def test_a_file_that_is_not_a_store_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "a.duckdb", [(0, _calls(1)[0])])
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(StoreError, match=r"b\.duckdb holds no shadow data"), reading(str(tmp_path)):
        pass
