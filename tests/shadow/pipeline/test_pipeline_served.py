"""Exchanges of controlled routes: who served, fallbacks, reverse-shadow copies to the legacy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shadow.model import BackendResponse, Request, Served
from shadow.pipeline.core import Pipeline, PipelineSettings
from tests.conftest import Server
from tests.shadow.pipeline.test_pipeline import JSON_HEADERS, fetch, query


def _pipeline(db: Path, legacy: Server, candidate: Server) -> Pipeline:
    return Pipeline(
        PipelineSettings(
            db=str(db),
            candidate=candidate.url,
            run_id="t1",
            compare_processes=0,
            options={"primary": legacy.url},
        )
    )


def test_served_by_candidate_is_compared_with_a_copy_to_the_legacy(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "p.duckdb"
    health = Request("GET", "/api/health", "", JSON_HEADERS)
    write = Request("POST", "/api/start-analysis", "", JSON_HEADERS, b"{}")
    answer = fetch(candidate, health)
    refused = BackendResponse.failed("connection refused (test)", 1.0)

    async def go() -> None:
        p = _pipeline(db, legacy, candidate)
        await p.start()
        p.on_request(
            "rev", health, time.time(), None, Served("candidate", "candidate", False, answer, True)
        )
        p.on_request(
            "norev",
            health,
            time.time(),
            None,
            Served("candidate", "candidate", False, answer, False),
        )
        p.on_request(
            "post", write, time.time(), None, Served("candidate", "candidate", False, answer, True)
        )
        # fell back: the candidate's failure comes with the request, the primary's answer later
        p.on_request("fb", health, time.time(), None, Served("canary", "primary", True, refused))
        p.on_primary("fb", fetch(legacy, health))
        # a shadow-mode request of a controlled route: copied as ever, mode recorded
        p.on_request("sh", health, time.time(), None, Served("shadow"))
        p.on_primary("sh", fetch(legacy, health))
        await p.close()

    asyncio.run(go())
    rows = {
        r[0]: r[1:]
        for r in query(
            db,
            "SELECT exchange_id, mode, served_by, fell_back, verdict, primary_status, "
            "candidate_status, candidate_error IS NOT NULL, skip_reason FROM exchanges",
        )
    }
    assert rows["rev"][:6] == ("candidate", "candidate", False, "match", 200, 200)
    assert rows["norev"][1:5] == ("candidate", False, "skipped", None)
    assert "reverse shadow off" in rows["norev"][7]
    assert rows["post"][3] == "skipped" and "POST not copied back" in rows["post"][7]
    assert rows["fb"][:3] == ("canary", "primary", True)
    assert rows["fb"][5:7] == (None, True)  # the candidate's failure is what was stored
    assert rows["sh"][:4] == ("shadow", "primary", False, "match")
