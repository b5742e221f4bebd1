"""The one outcome definition: every reader shows the same figures, judged at read time.

Stores are written by the real evaluator (tests/store_builder.py); the figures
of the report, `shadow check`, `shadow export`, the replay summary and the
macros themselves are compared endpoint by endpoint.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from reports.context import build_context
from shadow.config.loader import Accepted
from shadow.errors import StoreError
from shadow.review import gate
from shadow.review.export import export_tables
from shadow.store import outcomes
from shadow.store.writer import open_for_reading, reading
from tests.store_builder import ERROR, Call, write_store


def version_2_store(path: str) -> duckdb.DuckDBPyConnection:
    """An empty store as schema version 2 left it (migrations 001 and 002 only), open."""
    from importlib import resources

    from shadow.store import schema

    con = duckdb.connect(path)
    con.execute(schema.CREATE_META)
    for name in ("001_initial.sql", "002_secondary_and_status.sql"):
        con.execute(resources.files("shadow.store").joinpath("sql", name).read_text())
    con.execute(schema.SET_VERSION, ["2"])
    return con


ACCEPT_ETAG = {
    "accepted": [
        {"endpoint": "GET /api/orders/{id}", "path": "$.total", "reason": "rounding agreed"}
    ]
}


def _mixed_calls(seed: int = 7) -> list[Call]:
    """Noise-only, accepted, mixed, error and skipped exchanges on several endpoints."""
    rng = random.Random(seed)
    out: list[Call] = []
    for i in range(30):
        items = list(range(6))
        lists = []
        for _ in range(3):
            rng.shuffle(items)
            lists.append(list(items))
        # pure noise: a list in random order on every backend
        out.append(Call("GET /api/feed", {"items": lists[0]}, {"items": lists[1]},
                        secondary={"items": lists[2]}))  # fmt: skip
        # a volatile value next to a real difference on one request in five
        real = i % 5 == 0
        out.append(
            Call(
                "GET /api/orders/{id}",
                {"id": i, "nonce": f"p{i}", "total": 10.0, "name": "a"},
                {"id": i, "nonce": f"c{i}", "total": 10.01 if i % 3 == 0 else 10.0,
                 "name": "b" if real else "a"},
                secondary={"id": i, "nonce": f"s{i}", "total": 10.0, "name": "a"},
            )
        )  # fmt: skip
        # the candidate fails on a third, the secondary fails once
        out.append(
            Call(
                "GET /api/users/{id}",
                {"id": i},
                ERROR if i % 3 == 0 else {"id": i},
                secondary=ERROR if i == 4 else {"id": i},
            )
        )
        # never copied
        out.append(Call("POST /api/orders", {"ok": True}, None))
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_store(tmp_path_factory.mktemp("o") / "mixed.duckdb", _mixed_calls())


def _macro_rows(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM {outcomes.ENDPOINTS}(NULL)")
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def _figures(
    db: str, tmp: Path, accepted: list[Accepted] | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per reader, per endpoint: the figures it shows."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with reading(db, accepted=accepted) as con:
        out["macro"] = {
            ep: {k: r[k] for k in ("compared", "matched", "candidate_errors", "sent", "parity")}
            for ep, r in _macro_rows(con).items()
        }
        ctx = build_context(con, db)
        out["report"] = {
            e.endpoint: {
                "compared": e.compared,
                "matched": e.matched,
                "candidate_errors": e.candidate_errors,
                "sent": e.sent,
                "parity": e.parity,
            }
            for e in ctx.endpoints
        }
        rows = gate.fetch_rows(con, None)
        results = gate.evaluate(rows, gate.Thresholds(min_samples=1))
        out["check"] = {
            r.endpoint: {
                "compared": r.compared,
                "matched": r.matched,
                "candidate_errors": r.candidate_errors,
                "sent": r.sent,
                "parity": r.parity,
            }
            for r in results
        }
        exported = export_tables(con, str(tmp / "export"))
    files = {e.table: e.path for e in exported}
    table = pq.read_table(files["endpoint_outcomes"]).to_pylist()
    out["export"] = {
        r["endpoint"]: {
            k: r[k] for k in ("compared", "matched", "candidate_errors", "sent", "parity")
        }
        for r in table
    }
    # The exported per-exchange verdicts add up to the same figures.
    per_exchange: dict[str, dict[str, Any]] = {}
    for r in pq.read_table(files["exchange_outcomes"]).to_pylist():
        f = per_exchange.setdefault(
            r["endpoint"],
            {"compared": 0, "matched": 0, "candidate_errors": 0, "sent": 0, "parity": None},
        )
        f["compared"] += r["verdict"] in ("match", "differ")
        f["matched"] += r["verdict"] == "match"
        f["candidate_errors"] += r["verdict"] == "candidate_error"
        f["sent"] += r["verdict"] != "skipped"
    for f in per_exchange.values():
        f["parity"] = 100.0 * f["matched"] / f["compared"] if f["compared"] else None
    out["export exchanges"] = per_exchange
    return out


def _assert_all_equal(figures: dict[str, dict[str, dict[str, Any]]]) -> None:
    reference = figures["macro"]
    for reader, got in figures.items():
        assert set(got) == set(reference), reader
        for endpoint, f in reference.items():
            for key, value in f.items():
                other = got[endpoint][key]
                if isinstance(value, float):
                    assert other == pytest.approx(value), (reader, endpoint, key)
                else:
                    assert other == value, (reader, endpoint, key)


def test_report_check_and_export_show_the_same_figures(mixed: str, tmp_path: Path) -> None:
    figures = _figures(mixed, tmp_path, None)
    _assert_all_equal(figures)
    macro = figures["macro"]
    # ...and the figures are the ones the scenario implies (not merely equal to each other).
    assert macro["GET /api/feed"]["parity"] == 100.0  # noise from the first exchange
    assert macro["GET /api/orders/{id}"]["matched"] == 30 - 6 - 8  # real: 6 names, 8 totals
    assert macro["GET /api/users/{id}"]["candidate_errors"] == 10
    assert macro["GET /api/users/{id}"]["parity"] == 100.0
    assert macro["POST /api/orders"]["sent"] == 0


def test_accepted_entries_of_the_readers_config_apply_to_past_traffic(
    mixed: str, tmp_path: Path
) -> None:
    accepted = [Accepted("GET /api/orders/{id}", "$.total", "rounding agreed")]
    figures = _figures(mixed, tmp_path, accepted)
    _assert_all_equal(figures)
    assert figures["macro"]["GET /api/orders/{id}"]["matched"] == 30 - 6  # only names real
    with reading(mixed, accepted=accepted) as con:
        reasons = {
            r[0]
            for r in con.execute(
                f"SELECT reason FROM {outcomes.DIFFERENCES}(NULL) WHERE status = 'accepted'"
            ).fetchall()
        }
    assert reasons == {"accepted by config [[accepted]] #1: rounding agreed"}


def test_a_runs_own_accepted_entries_apply_without_a_config(tmp_path: Path) -> None:
    db = write_store(tmp_path / "a.duckdb", _mixed_calls(), config=ACCEPT_ETAG)
    with reading(db) as con:
        rows = _macro_rows(con)
        reason = con.execute(
            f"SELECT DISTINCT reason FROM {outcomes.DIFFERENCES}(NULL) WHERE status = 'accepted'"
        ).fetchall()
    assert rows["GET /api/orders/{id}"]["matched"] == 30 - 6
    assert reason == [("accepted by run r1 [[accepted]] #1: rounding agreed",)]
    # a config given to the reader replaces the runs' own entries
    with reading(db, accepted=[]) as con:
        assert _macro_rows(con)["GET /api/orders/{id}"]["matched"] == 30 - 6 - 8


def test_verdicts_do_not_depend_on_the_order_exchanges_arrived(tmp_path: Path) -> None:
    calls = _mixed_calls(seed=3)
    forward = write_store(tmp_path / "f.duckdb", calls)
    backward = write_store(tmp_path / "b.duckdb", list(reversed(calls)))
    timing = ("first_ts", "last_ts")  # the builder stamps exchanges in the order given
    with reading(forward) as a, reading(backward) as b:
        fa, fb = _macro_rows(a), _macro_rows(b)
    for rows in (fa, fb):
        for r in rows.values():
            for key in timing:
                r.pop(key)
    assert fa == fb


def _statistical(tmp_path: Path, name: str, pairs: list[tuple[bool, bool]]) -> str:
    """Exchanges whose field differs vs the secondary (s) and vs the candidate (c)."""
    calls = [
        Call(
            "GET /api/coin",
            {"coin": 0},
            {"coin": 1 if c else 0},
            secondary={"coin": 1 if s else 0},
        )
        for s, c in pairs
    ]
    return write_store(tmp_path / f"{name}.duckdb", calls)


def _coin(db: str) -> tuple[int, str]:
    with reading(db) as con:
        row = con.execute(
            f"SELECT matched, (SELECT string_agg(DISTINCT status) FROM "
            f"{outcomes.DIFFERENCES}(NULL)) FROM {outcomes.ENDPOINTS}(NULL)"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def test_statistical_noise_uses_the_paired_test(tmp_path: Path) -> None:
    # The legacy flips the field on half the calls, the candidate on half the calls,
    # never on the same exchange: no direct evidence, but no excess either -> noise.
    balanced = [(i % 2 == 0, i % 2 == 1) for i in range(20)]
    assert _coin(_statistical(tmp_path, "balanced", balanced)) == (20, "noise")
    # The candidate flips on every call, the legacy on a quarter: a real difference,
    # even in the quarter where the secondary flipped too (direct evidence is overruled).
    excess = [(i % 4 == 0, True) for i in range(20)]
    assert _coin(_statistical(tmp_path, "excess", excess)) == (0, "real")
    # Too few exchanges to judge statistically: only direct evidence counts, so the
    # four where only the candidate flipped stay real.
    few = [(i % 2 == 0, i % 2 == 1) for i in range(9)]
    assert _coin(_statistical(tmp_path, "few", few)) == (5, "real")


def test_mcnemar_threshold_boundary(tmp_path: Path) -> None:
    """z = (b - c - 1) / sqrt(b + c) < 2.326 and excess < 10 %, over n exchanges."""
    # n = 100: b = 9 discordant for the candidate, c = 1 for the secondary, k_s >= 1:
    # z = 7 / sqrt(10) = 2.21 < 2.326 and excess 8 % < 10 % -> noise.
    noisy = [(False, True)] * 9 + [(True, False)] + [(True, True)] * 5 + [(False, False)] * 85
    with reading(_statistical(tmp_path, "under", noisy)) as con:
        row = con.execute(
            f"SELECT b, c, round(z, 2), is_noise FROM {outcomes.NOISE_FIELDS}(NULL)"
        ).fetchone()
    assert row == (9, 1, 2.21, True)
    # b = 10: z = 8 / sqrt(11) = 2.41 -> real.
    real = [(False, True)] * 10 + [(True, False)] + [(True, True)] * 5 + [(False, False)] * 84
    with reading(_statistical(tmp_path, "over", real)) as con:
        row = con.execute(
            f"SELECT b, c, round(z, 2), is_noise FROM {outcomes.NOISE_FIELDS}(NULL)"
        ).fetchone()
    assert row == (10, 1, 2.41, False)


def test_secondary_errors_are_counted_and_never_evidence(tmp_path: Path) -> None:
    calls = [
        Call(
            "GET /api/x/{id}",
            {"id": i, "n": i},
            {"id": i, "n": -i} if i % 2 else {"id": i, "n": i},
            secondary={"id": i, "n": -i} if i != 0 else ERROR,
            secondary_status=503 if i == 1 else 200,
            candidate_status=500 if i == 1 else 200,
        )
        for i in range(12)
    ]
    db = write_store(tmp_path / "s.duckdb", calls)
    with reading(db) as con:
        row = _macro_rows(con)["GET /api/x/{id}"]
        evidence = con.execute(f"SELECT count(*) FROM {outcomes.NOISE_FIELDS}(NULL)").fetchone()
    # exchange 0 (refused) and 1 (503) are no evidence; $.n is noisy (the legacy flips it),
    # but exchange 1's status 500 is real whatever the secondary said.
    assert row["secondary_unusable"] == 2
    assert row["differed"] == 1
    assert evidence == (1,)


def test_a_reader_of_an_older_store_gets_one_line(tmp_path: Path) -> None:

    path = str(tmp_path / "v2.duckdb")
    con = version_2_store(path)
    con.close()
    with pytest.raises(StoreError, match=r"schema version 2 .*shadow migrate --db"):
        open_for_reading(path, wait=1)


def test_two_readers_at_once_each_keep_their_request(tmp_path: Path) -> None:
    """A reader finishing never removes another reader's request to the writer."""
    from shadow.store.writer import read_requested

    db = write_store(tmp_path / "r.duckdb", _mixed_calls()[:8])
    with reading(db):
        with reading(db):
            assert read_requested(db)
        assert read_requested(db)  # the inner reader is done, the outer one still reads
    assert not read_requested(db)


def test_accepted_endpoint_patterns_mean_what_the_writer_means(tmp_path: Path) -> None:
    """One matching rule (fnmatch, in Python) for the writer and every reader."""
    calls = [Call("GET /s/[legacy/{id}", {"a": 1}, {"a": 2}) for _ in range(3)]
    entry = {"endpoint": "GET /s/[legacy/*", "path": "$.a", "reason": "ok"}
    db = write_store(tmp_path / "g.duckdb", calls, config={"accepted": [entry]})
    with reading(db) as con:
        judged = con.execute(f"SELECT verdict FROM {outcomes.EXCHANGES}(NULL)").fetchall()
        provisional = con.execute("SELECT verdict FROM exchanges").fetchall()
    assert judged == provisional == [("match",)] * 3


def test_a_skipped_request_stays_skipped_when_the_primary_failed(tmp_path: Path) -> None:
    calls = [Call("POST /p", ERROR, None)] + [Call("GET /g", {"a": 1}, {"a": 1})] * 20
    db = write_store(tmp_path / "k.duckdb", calls)
    with reading(db) as con:
        rows = _macro_rows(con)
    assert (rows["POST /p"]["skipped"], rows["POST /p"]["sent"]) == (1, 0)
    results = gate.evaluate(
        [{**r, "latency_ratio": None} for r in rows.values()], gate.Thresholds(min_samples=20)
    )
    assert {r.endpoint: r.result for r in results} == {"POST /p": "NOT COPIED", "GET /g": "PASS"}


def test_migrating_a_version_2_store_keeps_its_accepted_differences(tmp_path: Path) -> None:
    """Before v3 an accepted difference was only a stored status: migration keeps it."""

    from shadow.store import schema
    from shadow.store.writer import migrate_file

    path = str(tmp_path / "v2acc.duckdb")
    con = version_2_store(path)
    for i in range(3):
        con.execute(
            "INSERT INTO exchanges (exchange_id, run_id, ts, source, method, endpoint, path,"
            " verdict, diff_count) VALUES (?, 'r1', now(), 'proxy', 'GET', 'GET /v/{id}', ?,"
            " 'match', 1)",
            [f"e{i}", f"/v/{i}"],
        )
        con.execute(
            "INSERT INTO differences (exchange_id, run_id, endpoint, path, kind, status, reason,"
            " cluster_path) VALUES (?, 'r1', 'GET /v/{id}', '$.t', 'value_changed', 'accepted',"
            " 'clients parse both', '$.t')",
            [f"e{i}"],
        )
    con.close()
    assert migrate_file(path) == (2, schema.SCHEMA_VERSION)
    with reading(path) as con:
        row = _macro_rows(con)["GET /v/{id}"]
        reasons = con.execute(
            f"SELECT DISTINCT status, reason FROM {outcomes.DIFFERENCES}(NULL)"
        ).fetchall()
    assert row["matched"] == 3
    assert reasons == [("accepted", "accepted by run r1 [[accepted]] #1: clients parse both")]


def test_migrate_refuses_a_duckdb_file_of_something_else(tmp_path: Path) -> None:
    from shadow.store.writer import migrate_file

    path = str(tmp_path / "other.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a shadow store"):
        migrate_file(path)
    con = duckdb.connect(path, read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert tables == {"sales"}  # nothing created in it


def test_a_runs_entries_meet_only_that_runs_endpoints(tmp_path: Path) -> None:
    """accepted_rules stays small: an entry is expanded only where it can apply."""
    calls = [Call("GET /a/{id}", {"t": 1}, {"t": 2}, run_id="r1")] * 3
    calls += [Call("GET /b/{id}", {"t": 1}, {"t": 2}, run_id="r2")] * 3
    calls += [Call("GET /c/{id}", {"u": 1}, {"u": 2}, run_id="r1")] * 3
    entry = {"endpoint": "GET /*", "path": "$.t", "reason": "both fine"}
    db = write_store(tmp_path / "runs.duckdb", calls, config={"accepted": [entry]})
    with reading(db) as con:
        rules = con.execute("SELECT run_id, endpoint FROM accepted_rules ORDER BY ALL").fetchall()
        rows = _macro_rows(con)
    # /c has no difference at $.t: no row for it; each run's entry meets its own endpoint
    assert rules == [("r1", "GET /a/{id}"), ("r2", "GET /b/{id}")]
    assert rows["GET /a/{id}"]["matched"] == rows["GET /b/{id}"]["matched"] == 3
    assert rows["GET /c/{id}"]["matched"] == 0


def test_migrated_reasons_are_kept_together(tmp_path: Path) -> None:

    from shadow.store.writer import migrate_file

    path = str(tmp_path / "reasons.duckdb")
    con = version_2_store(path)
    for i, reason in enumerate(["because b", "because a", None]):
        con.execute(
            "INSERT INTO differences (exchange_id, run_id, endpoint, path, kind, status, reason,"
            " cluster_path) VALUES (?, 'r1', 'GET /v', '$.t', 'value_changed', 'accepted', ?,"
            " '$.t')",
            [f"e{i}", reason],
        )
    con.close()
    migrate_file(path)
    con = duckdb.connect(path, read_only=True)
    entries = con.execute("SELECT entry, reason FROM run_accepted").fetchall()
    con.close()
    assert entries == [(1, "because a; because b")]
