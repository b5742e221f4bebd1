"""`--metrics` checked before anything starts: never where the proxy itself listens."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from shadow.errors import ConfigError
from shadow.live.proxy import check_metrics
from shadow.monitoring.server import MetricsServer
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("metrics", "listen"),
    [("localhost", "127.0.0.1"), ("127.0.0.1", "localhost"), ("127.0.0.1", "0.0.0.0"),
     ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "127.0.0.1")],
)  # fmt: skip
def test_the_listen_address_under_another_name_is_refused(metrics: str, listen: str) -> None:
    port = free_port()
    with pytest.raises(ConfigError, match="the proxy listens there"):
        check_metrics(f"{metrics}:{port}", (listen, port))


def test_another_port_is_fine() -> None:
    port = free_port()
    check_metrics(f"127.0.0.1:{port}", ("127.0.0.1", free_port()))


def test_an_ipv6_address_is_served() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = MetricsServer("::1", 0, lambda: b"x 1\n", lambda: None).start()
    try:
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://[::1]:{server.port}/metrics", timeout=5) as resp:
            assert resp.read() == b"x 1\n"
    finally:
        server.close()
