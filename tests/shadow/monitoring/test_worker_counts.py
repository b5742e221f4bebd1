"""The worker's counters count the rows the store took: not the spilled ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from comparators import compare
from comparators.model import Payload
from shadow.model import BackendResponse, Exchange, Request
from shadow.monitoring.worker_metrics import WorkerMetrics
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.pipeline.records import exchange_row
from tests.shadow.pipeline.test_pipeline import query


def _verdicts(metrics: WorkerMetrics) -> float:
    text = generate_latest(metrics.registry).decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "shadow_verdicts_total"
    )


def test_spilled_rows_are_not_counted(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ok = BackendResponse(Payload(200, (("content-type", "application/json"),), b'{"a":1}'), 1.0)

    def row(key: str) -> Any:
        ex = Exchange(key, Request("GET", "/a"), ok, ok, "GET /a", time.time())
        return exchange_row(ex, compare(ok.payload, ok.payload), "t1")  # type: ignore[arg-type]

    async def go() -> WorkerMetrics:
        p = Pipeline(
            PipelineSettings(db=str(db), candidate="http://127.0.0.1:9", run_id="t1",
                             compare_processes=0)
        )  # fmt: skip
        metrics = WorkerMetrics(p)
        p.written_observers.append(metrics.observe_rows)
        await p.start()
        p.writer.add(row("bad")._replace(ts="not a timestamp"))
        await p._flush()  # the batch fails: spilled beside the store
        p.writer.add(row("good"))
        await p.close()
        return metrics

    metrics = asyncio.run(go())
    stored = query(db, "SELECT count(*) FROM exchanges")[0][0]
    spilled = query(db, "SELECT rows_spilled FROM runs")[0][0]
    assert (stored, spilled) == (1, 1)
    assert _verdicts(metrics) == stored
