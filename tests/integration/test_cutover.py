"""Route by route cutover through the real proxy, with the file flag store (the default).

Everything is real: `shadow proxy` and `shadow flags` run as subprocesses, the
backends are tiny Starlette apps on 127.0.0.1 (they say who answered in an
`x-backend` header; their bodies are identical, so the proxy's comparisons
match), the flags live in a JSON file and the results in a DuckDB file.

The helpers here are shared with test_cutover_redis.py (the Redis flag store).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mmh3
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import (
    ROOT,
    RunningProxy,
    Server,
    UvicornThread,
    free_port,
    run_proxy,
    shadow_cmd,
    wait_port,
    wait_until,
)
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

ROUTE = "/api/items/{id}"  # the route cut over
FLAG = "api_items_id"  # its feature flag (the default name, from the route)
OTHER = "/api/things/{id}"  # a second route, for the restart
CHANGE_WITHIN = 1.5  # seconds a flag change may take to reach a running proxy (~1 s)
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# --- tiny backends ----------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    user: str | None
    copy: bool  # one of the proxy's copies (x-shadow-copy), not a client's request
    body: bytes


@dataclass
class Backend:
    """A backend that says who it is (`x-backend`) and records what it was sent.

    Both sides answer the same body, so the proxy's comparisons match; `failing`
    maps a method to the status it answers instead (a fault switched on live).
    """

    name: str
    failing: dict[str, int] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            seen = Seen(
                request.method,
                request.url.path,
                request.headers.get("x-user-id"),
                "x-shadow-copy" in request.headers,
                body,
            )
            with self.lock:
                self.seen.append(seen)
            ok = 201 if request.method == "POST" else 200
            status = self.failing.get(request.method, ok)
            text = json.dumps({"path": request.url.path, "method": request.method})
            return Response(text, status, {"x-backend": self.name}, media_type="application/json")

        return Starlette(routes=[Route("/{p:path}", handle, methods=ALL_METHODS)])

    def requests(self, method: str | None = None, *, copies: bool | None = None) -> list[Seen]:
        with self.lock:
            found = list(self.seen)
        return [
            s
            for s in found
            if (method is None or s.method == method) and (copies is None or s.copy == copies)
        ]


@dataclass
class Running:
    backend: Backend
    server: Server
    thread: UvicornThread

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.thread.stop()


@contextlib.contextmanager
def backend(name: str) -> Iterator[Running]:
    """A Backend served by uvicorn on a free 127.0.0.1 port (stop() may end it early)."""
    b = Backend(name)
    port = free_port()
    thread = UvicornThread(b.app(), port)
    thread.start()
    wait_port(port)
    running = Running(b, Server(f"http://127.0.0.1:{port}", port), thread)
    try:
        yield running
    finally:
        if thread.is_alive():
            thread.stop()


class Hanging:
    """A TCP server that accepts connections and never answers (a webhook that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


# --- config, flags, proxy --------------------------------------------------------------


def write_config(
    tmp: Path,
    *,
    control: str = "",
    route_extra: str = "",
    window: int = 5,
    min_requests: int = 5,
) -> Path:
    """A config with ROUTE and OTHER, users told apart by X-User-Id, a short window."""
    path = tmp / "shadow.toml"
    path.write_text(
        f"""
[[endpoints]]
route = "{ROUTE}"
{route_extra}

[[endpoints]]
route = "{OTHER}"

[control]
sticky = ["header:x-user-id"]
timeout = 2
{control}

[control.rollback]
window = {window}
min_requests = {min_requests}
failures = 2
""",
        encoding="utf-8",
    )
    return path


def flags(spec: str, config: Path, *args: str) -> str:
    """`shadow flags ARGS` on the store `spec` (a real subprocess); its stdout."""
    r = subprocess.run(
        shadow_cmd("flags", *args, "--flags", spec, "--config", str(config)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


@contextlib.contextmanager
def proxy_for(
    primary: Running, candidate: Running, tmp: Path, config: Path, spec: str, *extra: str
) -> Iterator[RunningProxy]:
    with run_proxy(
        primary.url, candidate.url, tmp / "cutover.duckdb", tmp,
        "--config", str(config), "--flags", spec, *extra,
    ) as proxy:  # fmt: skip
        yield proxy


def stop(proxy: RunningProxy, within: float = 30) -> str:
    """Stop the proxy (SIGINT); it must exit 0 in time. Its output."""
    t0 = time.monotonic()
    out = proxy.stop(timeout=within + 30)
    assert time.monotonic() - t0 < within, f"the proxy took too long to stop:\n{out}"
    assert proxy.process.returncode == 0, out
    assert "Traceback" not in out, out
    return out


def lines_with(output: str, pattern: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(pattern, line)]


class Client:
    """A client of the proxy that tells who answered each request (every path unique)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=10)
        self.n = 0
        self.answered: dict[str, str] = {}  # path -> the backend that answered it
        self.statuses: list[int] = []
        self.last = ""  # the path of the last request
        self._lock = threading.Lock()  # users may be sent from several threads

    def close(self) -> None:
        self.http.close()

    def send(
        self, method: str = "GET", user: str | None = None, prefix: str = "/api/items"
    ) -> httpx.Response:
        with self._lock:
            self.n += 1
            path = self.last = f"{prefix}/{self.n}"
        headers = {"x-user-id": user} if user else {}
        resp = self.http.request(method, self.base + path, headers=headers)
        with self._lock:
            self.statuses.append(resp.status_code)
            self.answered[path] = resp.headers.get("x-backend", "?")
        return resp

    def who(self, user: str | None = None, prefix: str = "/api/items") -> str:
        """Who answered a GET (which must succeed)."""
        resp = self.send("GET", user, prefix)
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.headers["x-backend"]


def settled(client: Client, who: str, user: str, prefix: str = "/api/items") -> None:
    """Wait (bounded) until `who` answers `user`: the proxy has read a change of the flags."""
    wait_until(f"{who} answering", lambda: client.who(user, prefix) == who, 3)


def bucket(route: str, user: str) -> int:
    """The documented canary bucket: murmur3_32("route:key") mod 100 + 1."""
    return int(mmh3.hash(f"{route}:{user}", 0, signed=False)) % 100 + 1


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (as an editor that saves by rename would)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def exchange_rows(db: Path, where: str = "true") -> list[dict[str, Any]]:
    cols = (
        "path, method, mode, served_by, fell_back, verdict, candidate_status, "
        "candidate_error, primary_status, run_id, lag_ms, primary_lag_ms"
    )
    names = [c.strip() for c in cols.split(",")]
    return [
        dict(zip(names, r, strict=True))
        for r in rows(db, f"SELECT {cols} FROM exchanges WHERE {where} ORDER BY ts")
    ]


def live_rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query on the store of a running proxy (its writer lets go meanwhile)."""
    from shadow.store.writer import reading

    if not db.exists():
        return []
    with reading(str(db), wait=10) as con:
        return con.execute(sql, params or []).fetchall()


def wait_worker(db: Path, exchanges: int, timeout: float = 30) -> None:
    """Wait until the proxy's worker (and its rollback controller) has stored `exchanges`.

    The proxy listens before its worker process is up; what only the worker does
    (judging, rolling back, logging a broken flags file) starts from then on.
    """
    wait_until(
        f"{exchanges} exchanges stored",
        lambda: (
            live_rows(db, "SELECT count(*) FROM exchanges")[0][0] >= exchanges
            if db.exists()
            else False
        ),
        timeout,
        every=0.2,
    )


def events(db: Path, kind: str) -> list[dict[str, Any]]:
    cols = "kind, route, flag, mode_before, mode_after, actor, reason, evidence"
    names = [c.strip() for c in cols.split(",")]
    found = rows(db, f"SELECT {cols} FROM events WHERE kind = ? ORDER BY ts", [kind])
    return [dict(zip(names, r, strict=True)) for r in found]


# --- 1. canary: sticky users, raising the percentage only adds users -------------------


def _sides(client: Client, users: list[str], per_user: int) -> dict[str, set[str]]:
    """Who answered each user's `per_user` requests (users in 4 threads, each in turn)."""

    def one(user: str) -> set[str]:
        return {client.who(user) for _ in range(per_user)}

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(users, pool.map(one, users), strict=True))


def test_canary_users_stay_on_their_side_and_raising_the_percentage_only_adds_users(
    tmp_path: Path,
) -> None:
    users = [f"user-{i}" for i in range(100)]
    expected = {p: {u for u in users if bucket(ROUTE, u) <= p} for p in (10, 25)}
    assert expected[10] < expected[25]  # the users the test needs exist
    config = write_config(tmp_path)
    spec = str(tmp_path / "flags.json")
    with (
        backend("primary") as primary,
        backend("candidate") as candidate,
        proxy_for(primary, candidate, tmp_path, config, spec) as proxy,
    ):
        client = Client(proxy.url)
        try:
            assert client.who(users[0]) == "primary"  # shadow mode: the primary answers
            seen: dict[int, set[str]] = {}
            for percent in (10, 25):
                flags(spec, config, "set", ROUTE, "canary", "--percent", str(percent))
                # a user of this step's new buckets tells when the proxy has the change
                newcomer = min(expected[percent] - seen.get(10, set()))

                def in_force(user: str = newcomer) -> bool:
                    return client.who(user) == "candidate"

                wait_until(f"canary {percent}% in force", in_force, CHANGE_WITHIN + 3)
                sides = _sides(client, users, per_user=3)
                mixed = {u: s for u, s in sides.items() if len(s) != 1}
                assert not mixed, f"users answered by both sides at {percent}%: {mixed}"
                seen[percent] = {u for u, s in sides.items() if s == {"candidate"}}
                assert seen[percent] == expected[percent], percent
            assert seen[10] < seen[25]  # raising only added users
            assert seen[10], seen  # (3 and 20 of these 100 users, by the hash)

            # A user without X-User-Id gets the proxy's cookie and keeps one side.
            with httpx.Client(timeout=10) as browser:
                first = browser.get(f"{proxy.url}/api/items/cookie-0")
                assert first.status_code == 200
                assert "shadow_uid=" in first.headers.get("set-cookie", "")
                cookie = browser.cookies.get("shadow_uid")
                assert cookie
                answers = {first.headers["x-backend"]}
                for i in range(1, 6):
                    r = browser.get(f"{proxy.url}/api/items/cookie-{i}")
                    assert r.status_code == 200 and "set-cookie" not in r.headers
                    answers.add(r.headers["x-backend"])
                assert len(answers) == 1, answers
                assert browser.cookies.get("shadow_uid") == cookie
        finally:
            client.close()
        stop(proxy)

    # The store says the same as the clients saw: who served each request.
    found = {r["path"]: r for r in exchange_rows(proxy.db, "path LIKE '/api/items/%'")}
    assert set(client.answered) <= set(found)
    for path, who in client.answered.items():
        row = found[path]
        assert row["served_by"] == who, (path, row)
        assert row["fell_back"] is False, row
        assert row["mode"] in ("shadow", "canary"), row
    in_canary = [r for r in found.values() if r["mode"] == "canary"]
    assert len(in_canary) >= 2 * 3 * len(users)
    # Each side still got the other's copy (shadow for the rest, reverse for the canary).
    primary_copies = {s.path for s in primary.backend.requests("GET", copies=True)}
    candidate_copies = {s.path for s in candidate.backend.requests("GET", copies=True)}
    for row in in_canary:
        other = primary_copies if row["served_by"] == "candidate" else candidate_copies
        assert row["path"] in other, row
        assert row["verdict"] == "match", row
        # Both timings carry our own delay in them, whoever timed them (docs/latency.md):
        # the candidate's answer timed by the proxy, the reverse copy by the worker.
        assert row["lag_ms"] is not None and row["primary_lag_ms"] is not None, row


# --- 3. a restart keeps the modes ------------------------------------------------------


def test_a_restarted_proxy_serves_the_same_modes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    spec = str(tmp_path / "flags.json")
    flags(spec, config, "set", ROUTE, "candidate", "--why", "cut over")
    flags(spec, config, "set", OTHER, "canary", "--percent", "50")
    users = [f"u{i}" for i in range(20)]
    expected = {u for u in users if bucket(OTHER, u) <= 50}
    assert 0 < len(expected) < len(users)
    sides: list[dict[str, set[str]]] = []
    first: list[str] = []  # who answered the first request after each start
    with backend("primary") as primary, backend("candidate") as candidate:
        for _ in range(2):
            with proxy_for(primary, candidate, tmp_path, config, spec) as proxy:
                client = Client(proxy.url)
                try:
                    first.append(client.who("u0"))
                    settled(client, "candidate", "u0")
                    sides.append(_sides_on(client, users, OTHER))
                    assert client.who("u1") == "candidate"
                finally:
                    client.close()
                stop(proxy)
    assert sides[0] == sides[1]
    assert {u for u, s in sides[0].items() if s == {"candidate"}} == expected
    assert all(len(s) == 1 for s in sides[0].values())
    runs = rows(
        proxy.db,
        "SELECT run_id, mode, served_by, count(*) FROM exchanges "
        "WHERE endpoint = ? GROUP BY ALL ORDER BY ALL",
        [f"GET {ROUTE}"],
    )
    assert len(runs) == 2 and all(r[1:3] == ("candidate", "candidate") for r in runs), runs
    # Even the first request after a start: it waits for the first read of the flags.
    assert first == ["candidate", "candidate"]


def _sides_on(client: Client, users: list[str], route: str) -> dict[str, set[str]]:
    prefix = route.removesuffix("/{id}")
    sides: dict[str, set[str]] = {u: set() for u in users}
    for _ in range(2):
        for user in users:
            sides[user].add(client.who(user, prefix))
    return sides


# --- 4. the file store, live: changes within ~1 s; a broken file keeps the last good ---


def test_flags_file_changes_apply_live_and_a_broken_file_keeps_the_last_good_flags(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    flags_file = tmp_path / "flags.json"
    spec = str(flags_file)
    with (
        backend("primary") as primary,
        backend("candidate") as candidate,
        proxy_for(primary, candidate, tmp_path, config, spec) as proxy,
    ):
        client = Client(proxy.url)
        try:
            assert [client.who("a") for _ in range(3)] == ["primary"] * 3
            wait_worker(proxy.db, 3)

            flags(spec, config, "set", ROUTE, "candidate", "--by", "tester")
            changed = time.monotonic()
            wait_until("candidate serving", lambda: client.who("a") == "candidate", 10)
            took = time.monotonic() - changed
            assert took <= CHANGE_WITHIN, f"the change took {took:.2f} s to apply"

            # The worker has taken the change in (its history is an event now): the
            # file breaks a while after the last change, as when someone edits it.
            wait_until(
                "the change recorded",
                lambda: live_rows(
                    proxy.db, "SELECT count(*) FROM events WHERE kind = 'flag_change'"
                )[0][0],
                10,
                every=0.2,
            )
            good = flags_file.read_text(encoding="utf-8")
            replace_file(flags_file, good.replace('"routes"', '"routes" oops', 1))
            broken_at = time.monotonic()
            during = []  # 2.5 s of traffic: several polls of the broken file
            for _ in range(100):
                if time.monotonic() - broken_at > 2.5:
                    break
                during.append(client.who("a"))
                time.sleep(0.05)
            assert len(during) >= 10 and set(during) == {"candidate"}, during
            # `shadow flags` refuses to overwrite a broken file
            r = subprocess.run(
                shadow_cmd("flags", "set", ROUTE, "shadow", "--flags", spec,
                           "--config", str(config)),
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert r.returncode != 0 and "not valid JSON" in r.stderr, r
            assert client.who("a") == "candidate"

            replace_file(flags_file, good)  # fixed: the proxy reads it again
            flags(spec, config, "set", ROUTE, "shadow", "--why", "back")
            changed = time.monotonic()
            wait_until("primary serving again", lambda: client.who("a") == "primary", 10)
            assert time.monotonic() - changed <= CHANGE_WITHIN
        finally:
            client.close()
        out = stop(proxy)

    broken = lines_with(out, "not valid JSON")
    assert len(broken) == 1, out  # one line for the episode, not one per poll
    assert "keeping the last good flags" in broken[0]
    modes = [r["mode"] for r in exchange_rows(proxy.db)]
    assert modes[:3] == ["shadow"] * 3 and "candidate" in modes and modes[-1] == "shadow"
    found = {r["path"]: r for r in exchange_rows(proxy.db)}
    for path, who in client.answered.items():
        assert found[path]["served_by"] == who


# --- 6. unsafe methods: the candidate's 500 stands; refused falls back ----------------


def test_unsafe_method_gets_the_candidates_500_and_falls_back_only_when_refused(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    spec = str(tmp_path / "flags.json")
    flags(spec, config, "set", ROUTE, "candidate")
    with backend("primary") as primary, backend("candidate") as candidate:
        candidate.backend.failing["POST"] = 500
        # --no-rollback: the 500s must not roll the route back in the middle of the test
        with proxy_for(primary, candidate, tmp_path, config, spec, "--no-rollback") as proxy:
            client = Client(proxy.url)
            try:
                for _ in range(3):
                    r = client.send("POST", "w")
                    assert r.status_code == 500, r.text
                    assert r.headers["x-backend"] == "candidate"
                assert client.who("w") == "candidate"  # GETs are answered by it meanwhile
                time.sleep(0.5)  # reverse-shadow copies of the GET land meanwhile
                assert primary.backend.requests("POST") == []  # never retried, never copied

                candidate.stop()  # now the candidate refuses connections
                fell_back = []
                for _ in range(3):
                    r = client.send("POST", "w")
                    assert r.status_code == 201, r.text
                    assert r.headers["x-backend"] == "primary"
                    fell_back.append(client.last)
                assert client.who("w") == "primary"
            finally:
                client.close()
            stop(proxy)

    posts = primary.backend.requests("POST")
    assert len(posts) == 3 and not any(p.copy for p in posts)  # the fallbacks, once each
    assert [p.path for p in posts] == fell_back
    by_path = {r["path"]: r for r in exchange_rows(proxy.db, "method = 'POST'")}
    assert len(by_path) == 6
    answered = [by_path[p] for p in sorted(by_path, key=lambda p: int(p.rsplit("/", 1)[1]))]
    for row in answered[:3]:
        assert (row["served_by"], row["fell_back"], row["candidate_status"]) == (
            "candidate", False, 500,
        ), row  # fmt: skip
    for row in answered[3:]:
        assert (row["served_by"], row["fell_back"]) == ("primary", True), row
        assert "refused" in (row["candidate_error"] or ""), row
        assert row["primary_status"] == 201


# --- 7. a webhook that fails changes nothing for clients -------------------------------


def test_failing_webhook_does_not_change_what_clients_get(tmp_path: Path) -> None:
    with (
        backend("primary") as primary,
        backend("candidate") as candidate,
        backend("hook") as hook,
    ):
        hook.backend.failing["POST"] = 500
        config = write_config(tmp_path, control=f'webhook = "{hook.url}/hook"')
        spec = str(tmp_path / "flags.json")
        flags(spec, config, "set", ROUTE, "candidate")
        candidate.backend.failing["GET"] = 503
        with proxy_for(primary, candidate, tmp_path, config, spec) as proxy:
            client = Client(proxy.url)
            try:
                deadline = time.monotonic() + 20
                for _ in range(400):  # until the webhook was tried 3 times (1 + 2 s apart)
                    if time.monotonic() > deadline or len(hook.backend.requests("POST")) >= 3:
                        break
                    assert client.who("x") == "primary"  # fallback, then the rollback
                    time.sleep(0.05)
                assert len(hook.backend.requests("POST")) == 3  # retried, then given up
                for _ in range(10):
                    assert client.who("x") == "primary"
            finally:
                client.close()
            out = stop(proxy)

    assert set(client.statuses) == {200}
    assert len(lines_with(out, "rolled back /api/items")) == 1, out
    assert len(lines_with(out, "notifying by webhook failed")) == 1, out
    [note] = events(proxy.db, "notification")
    assert note["reason"].startswith("webhook failed"), note
    assert "answered 500" in note["reason"] and "/hook" not in note["reason"]
    assert json.loads(note["evidence"]) == {"kind": "webhook", "ok": False, "about": "rollback"}
    [rollback] = events(proxy.db, "rollback")
    assert rollback["route"] == ROUTE
    doc = json.loads((tmp_path / "flags.json").read_text())
    assert doc["features"][FLAG] is False
    assert doc["routes"][ROUTE]["mode"] == "shadow" and doc["routes"][ROUTE]["rolled_back"]
