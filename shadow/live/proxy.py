"""Running mitmproxy in-process as a reverse proxy with the shadow addon."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import exceptions, options
from mitmproxy.tools.dump import DumpMaster

from shadow.config.loader import load_config
from shadow.config.tls import BackendTls, check, effective, probe
from shadow.errors import BackendUnreachable, ConfigError
from shadow.live.addon import Shadow
from shadow.model import DEFAULT_MAX_BODY
from shadow.pipeline.core import DEFAULT_MEMORY_BUDGET
from shadow.pipeline.sender import StreamLimits
from shadow.urls import check_listen


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
    tls: dict[str, BackendTls] = field(default_factory=dict)  # per leg, over the config's
    copy_proxy: str | None = None  # None: the environment's; "": none
    listen_cert: str = ""
    listen_key: str = ""
    flags: str = ""  # flag store: a file or redis:// URL ("": the config's, else the default file)
    rollback: bool = True
    metrics: str = ""  # HOST:PORT for /metrics, /healthz, /readyz ("": off)
    streams: StreamLimits = field(default_factory=StreamLimits)  # WebSocket and SSE limits


def check_backends(s: ProxySettings) -> None:
    """The primary must answer (TLS included); the candidate's and secondary's TLS must work.

    A candidate that is down is allowed (its copies are recorded as errors), but a
    certificate it will never pass is a setup mistake: better said once, at start.
    """
    tls = effective(load_config(s.config).tls, s.tls)
    for leg, settings in tls.items():
        check(settings, leg)  # files first: a missing CA is named, not a failed handshake
    probe(s.primary, "primary", tls["primary"])
    for leg, url in (("candidate", s.candidate), ("secondary", s.secondary)):
        if not url.startswith("https:"):
            continue
        try:
            probe(url, leg, tls[leg])
        except BackendUnreachable as exc:
            if "is not reachable" not in str(exc):
                raise


def _overlap(a: str, b: str, port: int) -> bool:
    """Whether hosts `a` and `b` name a common address (or either is every address)."""

    def addresses(host: str) -> set[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return {host}
        return {str(info[4][0]) for info in infos}

    anywhere = {"", "0.0.0.0", "::"}
    if a in anywhere or b in anywhere:
        return True
    mine, theirs = addresses(a), addresses(b)
    return bool(mine & theirs) or bool((mine | theirs) & anywhere)


def check_metrics(address: str, listen: tuple[str, int] | None = None) -> None:
    """ConfigError (exit 2) unless the --metrics address is valid, is not where the proxy
    listens (`listen`), and can be bound now."""
    from shadow.monitoring.address import parse_address
    from shadow.monitoring.server import MetricsServer

    host, port = parse_address(address)
    if listen is not None and port == listen[1] and _overlap(host, listen[0], port):
        raise ConfigError(
            f"--metrics {address}: the proxy listens there (--listen); pick another port"
        )
    MetricsServer(host, port, bytes, lambda: None).close()  # binds, or says why not


# Set by a SIGINT/SIGTERM that arrives before the event loop handles them (a process of
# `--processes N` told to stop while it starts): serving then stops as soon as it began.
_stop_requested = threading.Event()


def request_stop(signum: int, frame: Any) -> None:
    """A signal handler for the time before serving: stop once the loop runs."""
    _stop_requested.set()


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
            shadow_copy_proxy="none" if s.copy_proxy == "" else (s.copy_proxy or ""),
            shadow_listen_cert=s.listen_cert,
            shadow_listen_key=s.listen_key,
            shadow_flags=s.flags,
            shadow_rollback=s.rollback,
            shadow_metrics=s.metrics,
            shadow_stream_seconds=s.streams.seconds,
            shadow_stream_messages=s.streams.messages,
            shadow_stream_connections=s.streams.connections,
            shadow_websocket_history=0,  # nothing in `shadow proxy` reads them after the copy
            **_tls_option_values(s.tls),
        )
    except (exceptions.OptionsError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\"").splitlines()[0]) from None
    if not s.quiet:
        opts.update(termlog_verbosity="warn")
    else:
        # mitmproxy's log is off, ours is not: warnings and errors of the addon (a worker
        # that died, the flag store unreachable) still reach stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("shadow").addHandler(handler)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    if _stop_requested.is_set():  # a signal came while this process was starting
        master.shutdown()
    await master.run()
    return shadow.exit_code


def _tls_option_values(tls: dict[str, BackendTls]) -> dict[str, Any]:
    """The addon's shadow_<leg>_* options for the command line's TLS settings."""
    out: dict[str, Any] = {}
    for leg, t in tls.items():
        out.update(
            {
                f"shadow_{leg}_ca": t.ca or "",
                f"shadow_{leg}_cert": t.cert or "",
                f"shadow_{leg}_key": t.key or "",
                f"shadow_{leg}_insecure": t.insecure,
                f"shadow_{leg}_keep_host": t.keep_host,
            }
        )
        if leg != "primary":
            out[f"shadow_{leg}_http2"] = t.http2
    return out


def check_setup(s: ProxySettings) -> None:
    """Everything that can be checked before serving: the port, the backends, TLS."""
    os.makedirs(s.confdir, exist_ok=True)
    check_listen(s.listen_host, s.listen_port)
    if s.metrics:
        check_metrics(s.metrics, (s.listen_host, s.listen_port))
    check_backends(s)


def run_proxy(s: ProxySettings, checked: bool = False) -> int:
    """Check the setup (unless `checked`), then serve until SIGINT/SIGTERM; an exit code."""
    if not checked:
        check_setup(s)
    return asyncio.run(_serve(s))
