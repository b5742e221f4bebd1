"""Round trip: a live `shadow proxy --record` run, then `shadow replay` of what it recorded.

The replay must find the same endpoints with the same verdict counts as the
live run, both with --primary (requests sent to both backends again) and
without (the recorded responses stand for the primary's). The mitmproxy dump
is also exported to HAR by mitmproxy's own SaveHar addon and replayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from examples.traffic import SECRET_COOKIE, SECRET_TOKEN, demo_requests
from shadow.sources import read_traffic
from tests.conftest import Server, run_proxy
from tests.integration.helpers import replay as _replay
from tests.integration.helpers import rows as _rows
from tests.integration.helpers import verdicts as _verdicts

pytestmark = pytest.mark.integration

N = 60


def _live_run(legacy: Server, candidate: Server, tmp: Path, record: Path) -> Path:
    db = tmp / "live.duckdb"
    with run_proxy(
        legacy.url, candidate.url, db, tmp, "--record", str(record), "--run-id", "live"
    ) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            for req in demo_requests(N):
                r = client.request(req.method, req.path, headers=req.headers, content=req.body)
                assert r.status_code < 500
        proxy.stop()
    assert proxy.process.returncode == 0, proxy.output
    return db


@pytest.mark.parametrize("ext", ["mitm", "har", "jsonl"])
def test_record_then_replay_gives_the_live_verdicts(
    ext: str, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    record = tmp_path / f"traffic.{ext}"
    live_db = _live_run(legacy, candidate, tmp_path, record)
    live = _verdicts(live_db, "live")
    assert sum(live.values()) == N
    assert ("POST /api/start-analysis", "skipped") in live  # the demo has unsafe requests
    assert ("GET /api/analysis/{id}", "differ") in live

    # The recording has every exchange, secrets redacted.
    recorded = list(read_traffic(str(record)))
    assert len(recorded) == N
    raw = record.read_bytes()
    assert SECRET_TOKEN.encode() not in raw and SECRET_COOKIE.encode() not in raw
    assert b"[REDACTED]" in raw

    files = [record]
    if ext == "mitm":
        # mitmproxy's own HAR export (SaveHar addon) of the proxy's dump: a second producer
        har = tmp_path / "mitmproxy-export.har"
        mitmdump = Path(sys.executable).parent / "mitmdump"
        out = subprocess.run(
            [str(mitmdump), "-n", "-q", "-r", str(record), "--set", f"hardump={har}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(har.read_text())["log"]["creator"]["name"] == "mitmproxy"
        files.append(har)

    db = tmp_path / "replay.duckdb"
    for i, path in enumerate(files):
        for mode, extra in (("recorded", []), ("primary", ["--primary", legacy.url])):
            run = f"{mode}-{i}"
            r = _replay(
                str(path), "--candidate", candidate.url, *extra, "--db", str(db), "--run-id", run
            )
            assert r.returncode == 0, r.stderr
            assert _verdicts(db, run) == live, (path.name, mode)
            assert f"next: shadow report --db {db} --run {run}" in r.stdout
    # Replays are runs of their own, each naming its file.
    runs = _rows(db, "SELECT run_id, source, ended_at, exchanges FROM runs ORDER BY run_id")
    assert len(runs) == 2 * len(files)
    for run_id, source, ended, n in runs:
        assert str(source).startswith("replay:") and ended is not None and n == N, run_id
    # Nothing secret in the store either.
    dump = json.dumps(_rows(db, "SELECT * FROM exchanges"), default=str)
    assert SECRET_TOKEN not in dump and SECRET_COOKIE not in dump
