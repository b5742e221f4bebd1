"""Running mitmproxy in-process as a reverse proxy with the shadow addon."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import signal
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mitmproxy import exceptions, options
from mitmproxy.tools.dump import DumpMaster

from shadow.errors import BackendUnreachable, ConfigError, ListenError
from shadow.live.addon import Shadow
from shadow.model import DEFAULT_MAX_BODY
from shadow.pipeline.core import DEFAULT_MEMORY_BUDGET


@dataclass
class ProxySettings:
    primary: str
    candidate: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    db: str = "parity.duckdb"
    config: str | None = None
    mirror_unsafe: str = ""
    timeout: float = 5.0
    concurrency: int = 32
    queue_size: int = 10000
    drain_timeout: float = 30.0
    max_body: int = DEFAULT_MAX_BODY
    worker_memory: int = DEFAULT_MEMORY_BUDGET
    confdir: str = field(default_factory=lambda: os.path.expanduser("~/.shadow/mitmproxy"))
    run_id: str = ""
    record: str = ""
    secondary: str = ""
    quiet: bool = False


def check_reachable(url: str, what: str, timeout: float = 3.0) -> None:
    """Raise BackendUnreachable unless a TCP connection to `url`'s host opens."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendUnreachable(f"{what} {url} is not reachable: {reason}") from None


_LISTEN_RE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]*)):(?P<port>\d+)")


def parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080', ':8080' or '8080' -> (host, port).

    The host defaults to 127.0.0.1; an IPv6 address goes in brackets.
    """
    text = value.strip()
    if text.isdigit():
        text = ":" + text
    m = _LISTEN_RE.fullmatch(text)
    bad = ConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    if m is None or not 0 < int(m["port"]) < 65536:
        raise bad
    host = m["v6"] or m["host"] or "127.0.0.1"
    if m["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    return host, int(m["port"])


def check_listen(host: str, port: int) -> None:
    """ListenError (exit 6) unless (host, port) can be bound now: busy port, unknown host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"--listen {host}:{port}: unknown host ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ListenError(
                f"--listen {host}:{port}: cannot listen there ({exc.strerror or exc})"
            ) from None


async def _serve(s: ProxySettings) -> int:
    opts = options.Options()
    master = DumpMaster(opts, with_termlog=not s.quiet, with_dumper=False)
    shadow = Shadow()
    master.addons.add(shadow)
    try:
        opts.update(
            mode=[f"reverse:{s.primary}"],
            listen_host=s.listen_host,
            listen_port=s.listen_port,
            confdir=s.confdir,
            shadow_candidate=s.candidate,
            shadow_db=s.db,
            shadow_config=s.config or "",
            shadow_mirror_unsafe=s.mirror_unsafe,
            shadow_timeout=s.timeout,
            shadow_concurrency=s.concurrency,
            shadow_queue_size=s.queue_size,
            shadow_drain_timeout=s.drain_timeout,
            shadow_max_body=s.max_body,
            shadow_worker_memory=s.worker_memory,
            shadow_run_id=s.run_id,
            shadow_record=s.record,
            shadow_secondary=s.secondary,
        )
    except (exceptions.OptionsError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\"").splitlines()[0]) from None
    if not s.quiet:
        opts.update(termlog_verbosity="warn")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()
    return shadow.exit_code


def run_proxy(s: ProxySettings) -> int:
    """Check the setup, then serve until SIGINT/SIGTERM; return an exit code."""
    os.makedirs(s.confdir, exist_ok=True)
    check_listen(s.listen_host, s.listen_port)
    check_reachable(s.primary, "primary")
    return asyncio.run(_serve(s))
