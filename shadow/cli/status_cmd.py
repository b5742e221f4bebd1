"""`shadow status`: a live terminal view of a running proxy (its metrics) or of a store.

The figures come from shadow/monitoring/status.py; this module reads them every
`--interval` seconds and draws them with rich. Only the previous scrape is kept
(for requests/s), so a view left open for days holds no more than one left open
for a minute.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from shadow.errors import ConfigError, ShadowError

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

    from shadow.monitoring.status import Scrape, Status

STORE_WAIT = 10.0  # seconds a live view waits for the store (a writer lets go within ~1 s)


class _MetricsReader:
    """Reads /metrics; keeps the previous scrape only, for the rates."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.previous: Scrape | None = None

    def scrape(self) -> Scrape:
        from shadow.monitoring.status import read_scrape

        return read_scrape(self.url, time.monotonic())

    def __call__(self) -> Status:
        from shadow.monitoring.status import metrics_status

        current = self.scrape()
        status = metrics_status(current, self.previous, target=self.url)
        self.previous = current
        return status


def _store_reader(
    db: str, run: str | None, window: float, config: str | None, wait: float
) -> Callable[[], Status]:
    accepted = None
    if config:
        from shadow.config.loader import load_config

        accepted = load_config(config).accepted

    def read() -> Status:
        import duckdb

        from shadow.errors import StoreError
        from shadow.monitoring.status import store_status
        from shadow.store.writer import reading

        now = datetime.now(UTC).replace(tzinfo=None)
        try:
            with reading(db, wait=wait, accepted=accepted) as con:
                return store_status(con, run, now, window_s=window, target=db)
        except (duckdb.InterruptException, RuntimeError) as exc:
            # DuckDB turns Ctrl-C during a query into its own error: make it Ctrl-C again
            if isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc):
                raise KeyboardInterrupt from None
            raise
        except duckdb.Error as exc:
            raise StoreError(f"{db}: {str(exc).splitlines()[0]}") from None

    return read


# --- drawing -----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None, good: float, bad: float, higher_is_better: bool) -> str:
    if value is None:
        return "[dim]-[/]"
    ok = value >= good if higher_is_better else value <= good
    poor = value < bad if higher_is_better else value > bad
    style = "green" if ok else "red" if poor else "yellow"
    return f"[{style}]{value:.2f}[/]"


def _header(status: Status, error: str | None) -> Text:
    from rich.markup import escape
    from rich.text import Text

    h, parts = status.header, [f"[bold]{status.source}[/] {escape(status.target)}"]
    parts.append(f"run {escape(status.run_id or '-')}")
    if status.source == "store":
        parts.append("ended" if h.ended else "running" if h.ended is not None else "no run")
    if h.worker_up is not None:
        parts.append("worker [green]up[/]" if h.worker_up else "worker [red]DOWN[/]")
    if h.worker_lag_s is not None:
        parts.append(f"lag {h.worker_lag_s * 1000:.1f} ms")
    if h.queue_depth:
        parts.append("queues " + " ".join(f"{k} {n}" for k, n in h.queue_depth.items()))
    if h.flags_stale is not None:
        parts.append("flags [red]STALE[/]" if h.flags_stale else "flags fresh")
    if h.store_up is False:
        parts.append("store [red]DOWN[/]")
    parts.append(
        f"rollbacks {h.rollbacks}" if not h.rollbacks else f"[red]rollbacks {h.rollbacks}[/]"
    )
    t = status.totals
    parts.append(f"drops {t.dropped if t.dropped is not None else '-'}")
    line = " · ".join(parts)
    if error:
        line += f"\n[red]last read failed: {escape(error)}[/] (showing the read before)"
    return Text.from_markup(line)


def render(status: Status, error: str | None = None) -> RenderableType:
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD, show_footer=True, header_style="bold", pad_edge=False,
        collapse_padding=True,
    )  # fmt: skip
    t = status.totals
    columns = [
        ("method", "total"), ("route", ""), ("mode", ""),
        ("req/s", _num(t.requests_per_s)), ("reqs", f"{t.requests:,}"),
        ("parity%", _pct(t.parity, 99.9, 99.0, True)),
        ("c.err%", _pct(t.candidate_error_pct, 0.0, 1.0, False)),
        ("p.err", f"{t.primary_errors:,}"), ("p95 p", ""), ("p95 c", ""),
    ]  # fmt: skip
    for name, footer in columns:
        if name == "route":
            table.add_column(name, footer=footer, overflow="fold", min_width=10, ratio=1)
        elif name in ("method", "mode"):
            table.add_column(name, footer=footer, no_wrap=True)
        else:
            table.add_column(name, footer=footer, justify="right", no_wrap=True)
    for r in status.routes:
        share = r.canary_percent if r.mode == "canary" else None
        table.add_row(
            escape(r.method), escape(r.route),
            escape(r.mode) + (f" {share:.0f}%" if share is not None else ""),
            _num(r.requests_per_s), f"{r.requests:,}",
            _pct(r.parity, 99.9, 99.0, True), _pct(r.candidate_error_pct, 0.0, 1.0, False),
            f"{r.primary_errors:,}", _num(r.primary_p95_ms), _num(r.candidate_p95_ms),
        )  # fmt: skip
    window = status.rate_window_s
    rate = f"over {window:.1f} s" if window else "after the next read"
    notes = [Text(f"req/s {rate}; p95 (ms, p: primary, c: candidate) over the whole run; "
                  "c.err%: candidate errors of the requests sent", style="dim")]  # fmt: skip
    if not status.routes:
        notes.append(Text("no exchanges stored yet", style="dim"))
    return Group(_header(status, error), table, *notes)


def _live(read: Callable[[], Status], interval: float, console: Console) -> None:
    """Redraw every `interval` seconds until Ctrl-C; a failed read keeps the last view.

    The first read must work (its error ends the command with its exit code).
    """
    from rich.live import Live

    status = read()
    with Live(render(status), console=console, auto_refresh=False, transient=False) as live:
        last = time.monotonic()
        while True:
            time.sleep(max(0.0, last + interval - time.monotonic()))
            last = time.monotonic()
            error = None
            try:
                status = read()
            except ShadowError as exc:
                error = str(exc)
            live.update(render(status, error), refresh=True)


# --- the command -------------------------------------------------------------------------


@click.command()
@click.option(
    "--metrics",
    "metrics",
    default=None,
    metavar="URL|HOST:PORT",
    help="A running proxy's --metrics address (reads http://HOST:PORT/metrics).",
)
@click.option(
    "--db",
    default=None,
    type=click.Path(dir_okay=False),
    help="A store (DuckDB file), read through the outcome definition.",
)
@click.option(
    "--run", "run_id", default=None, help="With --db: the run to show (default: the newest)."
)
@click.option(
    "--config",
    default=None,
    type=click.Path(dir_okay=False),
    help="With --db: TOML config whose [[accepted]] entries apply (default: the run's own).",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between reads (and, with --once --metrics, between its two scrapes).",
)
@click.option(
    "--window",
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --db: requests/s counts the exchanges of the last SECONDS.",
)
@click.option("--once", is_flag=True, help="Print once and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (implies --once).")
def status(
    metrics: str | None, db: str | None, run_id: str | None, config: str | None,
    interval: float, window: float, once: bool, as_json: bool,
) -> None:  # fmt: skip
    """Live per-route figures: mode, requests/s, parity, error rates, p95 both sides, drops.

    From a running proxy (--metrics: counters since its worker started, the
    worker's provisional verdicts) or from a store (--db: the run's figures as
    `shadow report` and `shadow check` judge them). Redraws every --interval
    seconds until Ctrl-C. --once --json prints one document for scripts: the
    routes, their totals and the run's health (see docs/monitoring.md).

    Exit codes: 0 ok (Ctrl-C included), 2 bad option, 3 store missing or
    unreadable, 4 metrics endpoint unreachable, 5 not a metrics endpoint.

    \b
    Examples:
      shadow status --metrics 127.0.0.1:9464
      shadow status --metrics 127.0.0.1:9464 --once --json | jq '.totals.parity'
      shadow status --db parity.duckdb --run 3f2a9c1b0d4e --once
    """
    from rich.console import Console

    if (metrics is None) == (db is None):
        raise ConfigError("give one of --metrics URL or --db FILE")
    if metrics is not None and (run_id or config):
        raise ConfigError("--run and --config apply to --db only")
    for name, value in (("--interval", interval), ("--window", window)):
        if not 0 < value <= 3600:
            raise ConfigError(f"{name} {value}: expected seconds between 0 and 3600")
    once = once or as_json
    read: Callable[[], Status]
    if metrics is not None:
        from shadow.monitoring.status import metrics_url

        reader = _MetricsReader(metrics_url(metrics))
        if once:  # two scrapes --interval apart: the rate between them
            reader()
            time.sleep(interval)
        read = reader
    else:
        assert db is not None
        read = _store_reader(db, run_id, window, config, 30.0 if once else STORE_WAIT)
    # Not a terminal (a pipe, a log): wide enough that nothing is cut.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not once:
        try:
            _live(read, interval, console)
        except KeyboardInterrupt:
            sys.exit(0)
    first = read()
    if as_json:
        click.echo(json.dumps(first.as_json(), indent=2, default=str))
    else:
        console.print(render(first))
