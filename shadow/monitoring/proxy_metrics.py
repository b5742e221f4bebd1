"""What `--metrics` serves: the proxy's own figures, read when scraped, and the worker's.

The proxy and the worker are separate processes with separate registries. The
worker serves its registry on an ephemeral 127.0.0.1 port; a scrape of the
proxy's address reads that and appends it to the proxy's own families (the two
sets of names are disjoint), so one scrape sees both. Nothing here runs on the
live path: every proxy figure is read from the addon's state at scrape time.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shadow.config.control import ControlConfig
from shadow.control.routing import effective_mode
from shadow.monitoring.labels import OTHER, RouteLabels
from shadow.monitoring.procstat import children, cpu_and_memory

WORKER_TIMEOUT = 2.0  # seconds a scrape waits for the worker's part
WORKER_MAX = 16 * 1024 * 1024  # bytes of the worker's part read (its labels are bounded)
# Our own worker on 127.0.0.1: never through an HTTP_PROXY of the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MODES = ("legacy", "shadow", "canary", "candidate")


@dataclass
class ProxyState:
    """Readers of the addon's state (the addon fills them in; all called at scrape time)."""

    run_id: str
    requests: Callable[[], int]  # requests the proxy took
    restarts: Callable[[], int]  # workers restarted
    worker_pid: Callable[[], int | None]  # the live worker's pid (None: none now)
    worker_ready: Callable[[], bool]
    worker_port: Callable[[], int]  # the worker's metrics port (0: not yet)
    # (control, watcher) when route modes are on; the watcher has state, stale(), ever_read
    control: Callable[[], tuple[ControlConfig, Any] | None] = field(default=lambda: None)


class ProxyMetrics:
    """The proxy's registry and the exposition and readiness the server answers with."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ProxyCollector(state))

    def worker_text(self) -> bytes | None:
        """The worker's exposition, or None when it cannot be read now."""
        port = self.state.worker_port()
        if not port or self.state.worker_pid() is None:
            return None
        try:
            with _DIRECT.open(f"http://127.0.0.1:{port}/metrics", timeout=WORKER_TIMEOUT) as resp:
                text = bytes(resp.read(WORKER_MAX + 1))
        except (OSError, urllib.error.URLError):
            return None
        return None if len(text) > WORKER_MAX else text

    def exposition(self) -> bytes:
        worker = self.worker_text()
        up = 1.0 if worker is not None and self.state.worker_ready() else 0.0
        own = generate_latest(self.registry)
        tail = (
            b"# HELP shadow_worker_up 1 when the worker answers and is ready.\n"
            b"# TYPE shadow_worker_up gauge\n" + f"shadow_worker_up {up}\n".encode()
        )
        return own + tail + (worker or b"")

    def readiness(self) -> str | None:
        """None when ready: a worker is up and ready, and its store takes rows."""
        if self.state.worker_pid() is None or not self.state.worker_ready():
            return "the worker is not running (yet)"
        port = self.state.worker_port()
        if not port:
            return "the worker has no metrics port yet"
        try:
            with _DIRECT.open(f"http://127.0.0.1:{port}/readyz", timeout=WORKER_TIMEOUT):
                return None
        except urllib.error.HTTPError as exc:
            return exc.read(1000).decode(errors="replace").strip().removeprefix("not ready: ")
        except OSError as exc:
            return f"the worker does not answer ({exc})"


class _ProxyCollector(Collector):
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.labels = RouteLabels()

    def collect(self) -> Iterable[Metric]:
        s = self.state
        yield CounterMetricFamily(
            "shadow_proxy_requests", "Requests the proxy took (shadowed, served or shed).",
            value=float(s.requests()),
        )  # fmt: skip
        yield CounterMetricFamily(
            "shadow_worker_restarts", "Workers restarted after one died.",
            value=float(s.restarts()),
        )  # fmt: skip
        info = GaugeMetricFamily(
            "shadow_run_info", "The run this proxy records.", labels=["run_id"]
        )
        info.add_metric([s.run_id], 1.0)
        yield info
        yield from self._processes()
        yield from self._modes()

    def _processes(self) -> Iterable[Metric]:
        import os

        cpu = CounterMetricFamily(
            "shadow_process_cpu_seconds",
            "CPU time (user + system) of the proxy, the worker and its comparison processes.",
            labels=["process"],
        )
        rss = GaugeMetricFamily(
            "shadow_process_resident_memory_bytes",
            "Resident memory of the proxy, the worker and its comparison processes.",
            labels=["process"],
        )
        pids: list[tuple[str, int]] = [("proxy", os.getpid())]
        worker = self.state.worker_pid()
        if worker is not None:
            pids.append(("worker", worker))
            pids += [("compare", child) for child in children(worker)]
        totals: dict[str, list[float]] = {}
        for name, pid in pids:
            read = cpu_and_memory(pid)
            if read is None:
                continue
            t = totals.setdefault(name, [0.0, 0.0])
            t[0] += read[0]
            t[1] += read[1]
        for name, (seconds, resident) in totals.items():
            cpu.add_metric([name], seconds)
            rss.add_metric([name], resident)
        yield cpu
        yield rss

    def _modes(self) -> Iterable[Metric]:
        got = self.state.control()
        if got is None:
            return
        control, watcher = got
        # Configured routes are labelled as written, others as the worker labels them.
        self.labels.declared = frozenset(control.routes)
        state, stale, ever = watcher.state, watcher.stale(), watcher.ever_read
        mode = GaugeMetricFamily(
            "shadow_route_mode",
            "1 for the mode each route runs in now (flags applied; legacy while stale).",
            labels=["route", "mode"],
        )
        percent = GaugeMetricFamily(
            "shadow_route_canary_percent", "The share of users the candidate answers.",
            labels=["route"],
        )  # fmt: skip
        for route in sorted(set(control.routes) | set(state.routes)):
            m = effective_mode(control, state, route, stale=stale, ever_read=ever)
            label = self.labels.route(route)
            if label == OTHER:
                continue  # past the label limit: one series per route or none
            for name in MODES:
                mode.add_metric([label, name], 1.0 if m.mode == name else 0.0)
            share = 100 if m.mode == "candidate" else m.percent if m.mode == "canary" else 0
            percent.add_metric([label], float(share))
        yield mode
        yield percent
        yield GaugeMetricFamily(
            "shadow_flags_stale", "1 when the flag store has not been read for stale_after.",
            value=1.0 if stale else 0.0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "shadow_flags_read_age_seconds", "Seconds since the flags were last read.",
            value=watcher.age(),
        )  # fmt: skip
