"""shadow.monitoring: the address, bounded labels, /proc readings, the HTTP server, and
the live latency bound agreeing with the SQL one."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from shadow.errors import ConfigError
from shadow.monitoring import procstat
from shadow.monitoring.address import parse_address
from shadow.monitoring.labels import OTHER, RouteLabels
from shadow.monitoring.server import CONTENT_TYPE, Exposition, MetricsServer, Readiness
from shadow.monitoring.worker_metrics import usable
from shadow.store import outcomes, schema

# --- parse_address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("localhost:65535", ("localhost", 65535)),
        (":9464", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        (" 127.0.0.1:9464 ", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("[::]:9464", ("::", 9464)),
    ],
)
def test_parse_address_accepts(value: str, want: tuple[str, int]) -> None:
    assert parse_address(value) == want


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("", "expected HOST:PORT"),
        ("nonsense", "expected HOST:PORT"),
        ("127.0.0.1:", "expected HOST:PORT"),
        ("127.0.0.1:http", "expected HOST:PORT"),
        ("127.0.0.1:94.64", "expected HOST:PORT"),
        ("127.0.0.1:0", "port 0 is not between 1 and 65535"),
        ("127.0.0.1:-1", "port -1 is not between 1 and 65535"),
        ("127.0.0.1:65536", "port 65536"),
        ("127.0.0.1:70000", "port 70000"),
        ("70000", "port 70000"),
        ("my host:9464", "not a host name or address"),
        ("http://127.0.0.1:9464", "not a host name or address"),
        ("127.0.0.1/metrics:9464", "not a host name or address"),
    ],
)
def test_parse_address_refuses_with_one_line(value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_address(value)
    message = str(info.value)
    assert needle in message
    assert message.startswith(f"--metrics {value!r}")
    assert "\n" not in message


def test_parse_address_names_the_option_it_was_given() -> None:
    with pytest.raises(ConfigError, match=r"^shadow_metrics 'x'"):
        parse_address("x", "shadow_metrics")


# --- RouteLabels --------------------------------------------------------------------------


def test_route_labels_split_method_and_route() -> None:
    labels = RouteLabels()
    assert labels("GET /api/item/{id}") == ("GET", "/api/item/{id}")
    assert labels("post /api/submit") == ("POST", "/api/submit")
    assert labels("DELETE /") == ("DELETE", "/")
    for method in ("HEAD", "PUT", "PATCH", "OPTIONS"):
        assert labels(f"{method} /x")[0] == method


@pytest.mark.parametrize("endpoint", ["BREW /pot", "PROPFIND /dav", "G3T /x", "/x y"])
def test_unknown_methods_share_one_label(endpoint: str) -> None:
    assert RouteLabels()(endpoint)[0] == "OTHER"


def test_an_endpoint_without_a_route_is_the_root() -> None:
    assert RouteLabels()("GET") == ("GET", "/")
    assert RouteLabels()("") == ("OTHER", "/")


def test_routes_past_the_limit_are_other_and_counted() -> None:
    labels = RouteLabels(limit=3)
    assert [labels(f"GET /r{i}")[1] for i in range(3)] == ["/r0", "/r1", "/r2"]
    assert labels("GET /r3") == ("GET", OTHER)
    assert labels("POST /r4") == ("POST", OTHER)
    assert labels.overflow == 2
    # routes known before the limit keep their label, under any method, uncounted
    assert labels("POST /r1") == ("POST", "/r1")
    assert labels.route("/r0") == "/r0"
    assert labels.overflow == 2
    assert labels("GET /r3") == ("GET", OTHER)  # still over: counted again
    assert labels.overflow == 3


def test_the_default_limit_bounds_many_routes() -> None:
    labels = RouteLabels()
    values = {labels(f"GET /api/{i}")[1] for i in range(labels.limit + 100)}
    assert len(values) == labels.limit + 1  # the limit, and "other"
    assert OTHER in values
    assert labels.overflow == 100


# --- procstat -----------------------------------------------------------------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")


@needs_proc
def test_own_cpu_and_memory_are_read_and_sane() -> None:
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn some CPU: the reading must show it
        sum(i * i for i in range(1000))
    read = procstat.cpu_and_memory(os.getpid())
    assert read is not None
    cpu, rss = read
    t = os.times()
    own = t.user + t.system
    tick = 1 / os.sysconf("SC_CLK_TCK")
    # the kernel's figure in clock ticks, read a moment before os.times()
    assert own - 0.1 - 2 * tick <= cpu <= own + 2 * tick, (cpu, own)
    assert cpu >= 0.2
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    assert 1 << 20 < rss <= peak + (16 << 20), (rss, peak)
    text = Path(f"/proc/{os.getpid()}/status").read_text()
    status = dict(line.split(":", 1) for line in text.splitlines())
    vmrss = int(status["VmRSS"].split()[0]) * 1024
    assert abs(rss - vmrss) <= 8 << 20, (rss, vmrss)  # both the resident set, moments apart


@needs_proc
def test_cpu_grows_with_work() -> None:
    first = procstat.cpu_and_memory(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        sum(i * i for i in range(1000))
    second = procstat.cpu_and_memory(os.getpid())
    assert first is not None and second is not None
    assert second[0] - first[0] >= 0.2


@needs_proc
def test_a_dead_pid_reads_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)  # reaped: /proc/<pid> is gone
    assert procstat.cpu_and_memory(proc.pid) is None
    assert procstat.children(proc.pid) == []


@needs_proc
def test_a_command_name_with_spaces_and_parentheses_is_read(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "open('/proc/self/comm', 'w').write('a) b (c')\n"
        "print('ok', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ok"
        assert "a) b (c" in Path(f"/proc/{proc.pid}/stat").read_text()
        read = procstat.cpu_and_memory(proc.pid)
        assert read is not None
        cpu, rss = read
        assert 0 <= cpu < 60 and rss > 1 << 20
    finally:
        proc.kill()
        proc.wait(10)


@needs_proc
def test_children_lists_a_live_child(sleeper: subprocess.Popen[bytes]) -> None:
    assert sleeper.pid in procstat.children(os.getpid())
    assert procstat.children(sleeper.pid) == []


# --- MetricsServer ------------------------------------------------------------------------


def _get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body); a hung server fails the test by the timeout."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@contextlib.contextmanager
def server(
    exposition: Exposition = lambda: b"x_total 1.0\n", readiness: Readiness = lambda: None
) -> Iterator[MetricsServer]:
    s = MetricsServer("127.0.0.1", 0, exposition, readiness).start()
    try:
        yield s
    finally:
        s.close()


def test_the_server_answers_metrics_health_and_readiness() -> None:
    with server() as s:
        assert s.port > 0
        assert _get(s.port, "/metrics") == (200, CONTENT_TYPE, "x_total 1.0\n")
        assert _get(s.port, "/metrics?name[]=x")[0] == 200
        assert _get(s.port, "/healthz")[::2] == (200, "ok\n")
        assert _get(s.port, "/readyz")[::2] == (200, "ready\n")


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/x", "/favicon.ico", "/ready"])
def test_other_paths_are_404(path: str) -> None:
    with server() as s:
        status, _, body = _get(s.port, path)
    assert status == 404 and "/metrics" in body


def test_not_ready_is_503_with_the_reason() -> None:
    with server(readiness=lambda: "the store: disk full") as s:
        assert _get(s.port, "/readyz")[::2] == (503, "not ready: the store: disk full\n")
        assert _get(s.port, "/healthz")[0] == 200  # alive all the same


def test_a_raising_exposition_is_500_not_a_hang() -> None:
    def broken() -> bytes:
        raise RuntimeError("registry exploded")

    with server(exposition=broken) as s:
        status, _, body = _get(s.port, "/metrics")
        assert status == 500 and "registry exploded" in body
        assert _get(s.port, "/metrics")[0] == 500  # and it still serves afterwards
        assert _get(s.port, "/healthz")[0] == 200


def test_a_raising_readiness_is_503_not_a_hang() -> None:
    def broken() -> str | None:
        raise RuntimeError("no idea")

    with server(readiness=broken) as s:
        status, _, body = _get(s.port, "/readyz")
    assert status == 503 and "no idea" in body


def test_a_busy_port_is_a_one_line_config_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            MetricsServer("127.0.0.1", port, bytes, lambda: None, option="shadow_metrics")
    message = str(info.value)
    assert message.startswith(f"shadow_metrics 127.0.0.1:{port}: cannot listen there")
    assert "\n" not in message
    assert ConfigError.exit_code == 2


def test_an_unknown_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--metrics no-such-host\.invalid:9464"):
        MetricsServer("no-such-host.invalid", 9464, bytes, lambda: None)


def test_close_lets_the_port_go() -> None:
    with server() as s:
        port = s.port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    # closing a server that was never started works too
    MetricsServer("127.0.0.1", 0, bytes, lambda: None).close()


# --- usable: the live histograms' bound is SQL's shadow_latency_usable --------------------


@pytest.fixture(scope="module")
def sql() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    schema.migrate(con)
    outcomes.install(con)
    try:
        yield con
    finally:
        con.close()


LAGS = [
    None, 0.0, 0.5, 1.0, 2.0, math.nextafter(2.0, 0.0), math.nextafter(2.0, math.inf),
    2.001, 1.999, 4.0, 1e6,
]  # fmt: skip


def test_usable_agrees_with_sql_on_a_grid(sql: duckdb.DuckDBPyConnection) -> None:
    got = sql.execute(
        "SELECT lag, shadow_latency_usable(lag) FROM (SELECT unnest(CAST(? AS DOUBLE[])) AS lag)",
        [LAGS],
    ).fetchall()
    assert len(got) == len(LAGS)
    wrong = [(lag, s) for lag, s in got if usable(lag) is not bool(s)]
    assert not wrong, wrong
    # both answers occur: the grid crosses the bound
    assert {bool(s) for _, s in got} == {True, False}


def test_usable_agrees_with_sql_on_stored_columns(sql: duckdb.DuckDBPyConnection) -> None:
    # the way the report reads it: DOUBLE columns of a table, one value at a time
    sql.execute("CREATE OR REPLACE TEMP TABLE lags (lag_ms DOUBLE)")
    sql.executemany("INSERT INTO lags VALUES (?)", [(lag,) for lag in LAGS])
    got = sql.execute("SELECT lag_ms, shadow_latency_usable(lag_ms) FROM lags").fetchall()
    assert len(got) == len(LAGS)
    for lag, s in got:
        assert usable(lag) is bool(s), (lag, s)


def test_the_bound_does_not_depend_on_the_sample_time(sql: duckdb.DuckDBPyConnection) -> None:
    """A bound relative to a sample's own time keeps slow samples and drops fast ones with
    the same lag: pairs that differ only in their times are kept or left out alike."""
    rows = sql.execute(
        "SELECT shadow_latency_pair('match', p, c, NULL, NULL, 1.5, 1.5) "
        "FROM (SELECT unnest([1.0, 5.0, 500.0]) AS p, unnest([1.0, 50.0, 5.0]) AS c)"
    ).fetchall()
    assert rows == [(True,), (True,), (True,)]
    rows = sql.execute(
        "SELECT shadow_latency_pair('match', p, c, NULL, NULL, 2.5, 0.0) "
        "FROM (SELECT unnest([1.0, 500.0]) AS p, unnest([1.0, 5000.0]) AS c)"
    ).fetchall()
    assert rows == [(False,), (False,)]


def test_undeclared_routes_never_carry_data_in_their_labels() -> None:
    """An automatic template keeps segments that do not look like ids (an e-mail, a token):
    a label shows them as {x}; a declared [[endpoints]] template is shown as written."""
    labels = RouteLabels(declared=["/api/Users/{id}"])
    assert labels("GET /u/john.doe@example.com/profile") == ("GET", "/u/{x}/profile")
    assert labels("GET /api/files/sk_live_abcdefghijklmnop/download") == (
        "GET",
        "/api/files/{x}/download",
    )
    assert labels("GET /api/process-updates/{id}") == ("GET", "/api/process-updates/{id}")
    assert labels("GET /api/Users/{id}") == ("GET", "/api/Users/{id}")
    assert labels("GET /api/Other/{id}") == ("GET", "/api/{x}/{id}")
    assert labels("GET /" + "a" * 25) == ("GET", "/{x}")
