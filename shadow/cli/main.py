"""The `shadow` command line: proxy, report, and the subcommands later issues add."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from shadow.errors import ConfigError, InputError, ShadowError, StoreError


class _Group(click.Group):
    """Turns ShadowError into one line on stderr and its exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShadowError as exc:
            click.echo(f"shadow: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("shadow: interrupted", err=True)
            sys.exit(130)


def _accepted(config: str | None) -> Any:
    """The [[accepted]] entries of `config` for a reader; None (each run's own) without one."""
    if not config:
        return None
    from shadow.config.loader import load_config  # imports DeepDiff: only when needed

    return load_config(config).accepted


def accepted_config_option() -> Callable[[Any], Any]:
    """`--config` of the readers: whose [[accepted]] entries apply to what is read."""
    return click.option(
        "--config",
        default=None,
        type=click.Path(dir_okay=False),
        help="TOML config whose [[accepted]] entries apply to every run read "
        "(default: each run's own entries).",
    )


_TLS_LEGS = ("primary", "secondary", "candidate")


def tls_options(f: Any) -> Any:
    """Per-backend TLS options (and the copies' outbound proxy), shared by proxy and replay."""
    for leg in reversed(_TLS_LEGS):
        f = click.option(
            f"--insecure-{leg}", is_flag=True,
            help=f"Do not verify the {leg}'s certificate (logged, recorded in the run).",
        )(f)  # fmt: skip
        f = click.option(
            f"--{leg}-key", type=click.Path(dir_okay=False), help=f"Key of --{leg}-cert."
        )(f)
        f = click.option(
            f"--{leg}-cert", type=click.Path(dir_okay=False),
            help=f"Client certificate (PEM) to present to the {leg} (mTLS).",
        )(f)  # fmt: skip
        f = click.option(
            f"--{leg}-ca", type=click.Path(dir_okay=False),
            help=f"CA bundle (PEM) to trust for the {leg}'s certificate (an internal CA).",
        )(f)  # fmt: skip
    f = click.option(
        "--keep-host", default="", metavar="LEGS",
        help="Send the client's Host (and TLS name) to these backends instead of their own, "
        'for ingresses that route by name: "primary,candidate", "all".',
    )(f)  # fmt: skip
    f = click.option(
        "--http2", "http2_legs", default="", metavar="LEGS",
        help='Send the copies over HTTP/2 to these backends: "candidate", "secondary", "all".',
    )(f)  # fmt: skip
    return click.option(
        "--copy-proxy", default="", metavar="URL",
        help="HTTP proxy for the copies (default: HTTPS_PROXY/HTTP_PROXY unless NO_PROXY "
        'exempts the backend; "none": never).',
    )(f)  # fmt: skip


def stream_options(f: Any) -> Any:
    """How much of a WebSocket conversation or event stream is copied (proxy and replay)."""
    f = click.option(
        "--stream-connections", default=100, show_default=True, metavar="N",
        help="WebSocket conversations copied at once; past it new ones are skipped, counted.",
    )(f)  # fmt: skip
    f = click.option(
        "--stream-messages", default=1000, show_default=True, metavar="N",
        help="Messages (or events) of one conversation or stream compared at most.",
    )(f)  # fmt: skip
    return click.option(
        "--stream-seconds", default=60.0, show_default=True, metavar="SECONDS",
        help="How long one conversation or event stream is followed and compared "
        "(the client's own connection goes on untouched).",
    )(f)  # fmt: skip


def _stream_limits(args: dict[str, Any], max_body: int) -> Any:
    """Pop the stream options out of a command's arguments: a StreamLimits."""
    from shadow.pipeline.sender import StreamLimits
    from shadow.urls import positive_number

    seconds = args.pop("stream_seconds")
    messages, connections = args.pop("stream_messages"), args.pop("stream_connections")
    positive_number(seconds, "--stream-seconds")
    for name, value in (("--stream-messages", messages), ("--stream-connections", connections)):
        if value < 1:
            raise ConfigError(f"{name} {value}: expected at least 1")
    return StreamLimits(messages, seconds, max_body, connections)


def _legs(value: str, flag: str, allowed: tuple[str, ...] = _TLS_LEGS) -> set[str]:
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    if "all" in names:
        return set(allowed)
    bad = names - set(allowed)
    if bad:
        raise ConfigError(f"{flag} {value!r}: expected some of {', '.join(allowed)} or all")
    return names


def _tls_from_cli(args: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Pop the TLS options out of a command's arguments: (per-leg BackendTls, copy proxy)."""
    from shadow.config.tls import BackendTls

    keep = _legs(args.pop("keep_host"), "--keep-host")
    http2 = _legs(args.pop("http2_legs"), "--http2", ("secondary", "candidate"))
    tls = {}
    for leg in _TLS_LEGS:
        tls[leg] = BackendTls(
            ca=args.pop(f"{leg}_ca"),
            cert=args.pop(f"{leg}_cert"),
            key=args.pop(f"{leg}_key"),
            insecure=args.pop(f"insecure_{leg}"),
            keep_host=leg in keep,
            http2=leg in http2,
        )
    proxy = args.pop("copy_proxy")
    if proxy and proxy.lower() != "none":
        from shadow.urls import parse_backend_url

        parse_backend_url(proxy, "--copy-proxy")
    return tls, (None if not proxy else "" if proxy.lower() == "none" else proxy)


def _warn_insecure(configured: Any, given: dict[str, Any]) -> None:
    """Say on stderr, whatever --quiet says, which backends' certificates go unchecked."""
    from shadow.config.tls import effective

    for leg, settings in effective(configured, given).items():
        if settings.insecure:
            click.echo(
                f"shadow: warning: TLS certificates of the {leg} are NOT verified "
                f"(--insecure-{leg} or [tls.{leg}] insecure)",
                err=True,
            )


def db_option(default: str | None = "parity.duckdb") -> Callable[[Any], Any]:
    return click.option(
        "--db",
        default=default,
        show_default=True,
        required=default is None,
        type=click.Path(dir_okay=False),
        help="DuckDB file holding exchanges and differences.",
    )


def stores_option() -> Callable[[Any], Any]:
    """`--db` of the readers: one store, or several (shards) read as one merged store."""
    return click.option(
        "--db",
        default="parity.duckdb",
        show_default=True,
        type=click.Path(),
        help="DuckDB file holding exchanges and differences; or several, read as one: a "
        "directory (its *.duckdb files) or a quoted glob ('shards/*.duckdb').",
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shadow-parity")
def cli() -> None:
    """Shadow traffic from a primary backend to a candidate and report parity."""


@cli.command()
@click.option("--primary", required=True, help="Base URL of the primary (legacy) backend.")
@click.option("--candidate", required=True, help="Base URL of the candidate (new) backend.")
@click.option(
    "--secondary",
    default=None,
    help="Base URL of a second primary instance, sent safe requests only: "
    "what varies between the two is evidence of noise.",
)
@click.option(
    "--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to accept clients on."
)
@db_option()
@click.option("--config", type=click.Path(dir_okay=False), help="TOML rules and routes.")
@click.option(
    "--mirror-unsafe",
    default="",
    metavar="METHODS",
    help='Also copy these methods, e.g. "POST,PUT" or "*" (default: GET, HEAD, OPTIONS only).',
)
@click.option("--timeout", default=5.0, show_default=True, help="Candidate timeout, seconds.")
@click.option("--concurrency", default=32, show_default=True, help="Copies in flight at most.")
@click.option("--queue-size", default=10000, show_default=True, help="Copies waiting at most.")
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    help="Seconds shutdown waits for copies and comparisons in flight; the rest is "
    'stored as skipped ("shutdown: ...").',
)
@click.option(
    "--max-body",
    default="8MiB",
    show_default=True,
    metavar="SIZE",
    help="Bytes of a body held for comparison; longer answers are compared by SHA-256, "
    "longer requests are not copied.",
)
@click.option(
    "--worker-memory",
    default="512MiB",
    show_default=True,
    metavar="SIZE",
    help="Bytes of traffic the worker holds at most; past it copies are skipped and counted.",
)
@click.option(
    "--confdir",
    default="~/.shadow/mitmproxy",
    show_default=True,
    help="mitmproxy configuration directory (certificates).",
)
@click.option("--run-id", default="", help="Name of this run in the store (default: random).")
@click.option(
    "--record",
    default="",
    type=click.Path(dir_okay=False),
    help="Also record traffic (secrets redacted) to a .har, .jsonl or mitmproxy dump file.",
)
@click.option(
    "--listen-cert", type=click.Path(dir_okay=False),
    help="Certificate (PEM) shown to clients that connect with TLS (HTTP/1.1 and HTTP/2); "
    "default: one from mitmproxy's own CA in --confdir.",
)  # fmt: skip
@click.option("--listen-key", type=click.Path(dir_okay=False), help="Key of --listen-cert.")
@click.option(
    "--flags",
    default="",
    metavar="FILE|URL",
    help="Route modes and feature flags: a JSON file (see `shadow flags`) or "
    "redis://host:port/db. Default: the config's [control] flags, else shadow-flags.json.",
)
@click.option(
    "--no-rollback",
    is_flag=True,
    help="Never roll a failing route back automatically (fallback still applies).",
)
@click.option(
    "--metrics",
    default="",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics (proxy and worker), /healthz and /readyz there, "
    "e.g. 127.0.0.1:9464 (docs/monitoring.md).",
)
@click.option(
    "--processes", default=1, show_default=True, metavar="N",
    help="Proxy processes sharing the listening port (SO_REUSEPORT), each with its own "
    "worker; one run, folded into --db when they stop.",
)  # fmt: skip
@stream_options
@tls_options
@click.option("--quiet", "-q", is_flag=True, help="Do not print mitmproxy's log.")
def proxy(
    primary: str,
    candidate: str,
    secondary: str | None,
    listen: str,
    db: str,
    config: str | None,
    mirror_unsafe: str,
    timeout: float,
    concurrency: int,
    queue_size: int,
    drain_timeout: float,
    max_body: str,
    worker_memory: str,
    confdir: str,
    run_id: str,
    record: str,
    quiet: bool,
    listen_cert: str | None,
    listen_key: str | None,
    flags: str,
    no_rollback: bool,
    metrics: str,
    processes: int,
    **tls_args: Any,
) -> None:
    """Reverse-proxy to PRIMARY and copy each request to CANDIDATE.

    Clients get the primary's answers unchanged; copies are compared in a
    worker process and stored in --db. Stop with Ctrl-C: what is in flight is
    finished (up to --drain-timeout; the rest is stored as skipped "shutdown: ...")
    and written first. Exit 7 when requests were lost (a worker died or had to be
    killed) or a worker was restarted: see runs.requests_lost.

    \b
    Example:
      shadow proxy --primary http://127.0.0.1:3000 --candidate http://127.0.0.1:8000 \\
          --listen 127.0.0.1:8080 --db parity.duckdb --config shadow.toml
    """
    import os

    from shadow.config.loader import load_config, parse_methods
    from shadow.live.proxy import ProxySettings, check_setup, run_proxy
    from shadow.store.writer import ensure_writable
    from shadow.urls import parse_backend_url, parse_listen, parse_size, positive_number

    host, port = parse_listen(listen)
    if metrics:
        from shadow.monitoring.address import parse_address

        parse_address(metrics)
    positive_number(timeout, "--timeout")
    positive_number(drain_timeout, "--drain-timeout")
    tls, copy_proxy = _tls_from_cli(tls_args)
    max_body_bytes = parse_size(max_body, "--max-body")
    streams = _stream_limits(tls_args, max_body_bytes)
    if listen_key and not listen_cert:
        raise ConfigError("--listen-key needs --listen-cert too")
    for name, value in (("--concurrency", concurrency), ("--queue-size", queue_size)):
        if value < 1:
            raise ConfigError(f"{name} {value}: expected at least 1")
    settings = ProxySettings(
        primary=parse_backend_url(primary, "--primary"),
        candidate=parse_backend_url(candidate, "--candidate"),
        listen_host=host,
        listen_port=port,
        db=db,
        config=config,
        mirror_unsafe=mirror_unsafe,
        timeout=timeout,
        concurrency=concurrency,
        queue_size=queue_size,
        drain_timeout=drain_timeout,
        max_body=max_body_bytes,
        worker_memory=parse_size(worker_memory, "--worker-memory"),
        confdir=os.path.expanduser(confdir),
        run_id=run_id,
        record=record,
        secondary=parse_backend_url(secondary, "--secondary") if secondary else "",
        quiet=quiet,
        tls=tls,
        copy_proxy=copy_proxy,
        listen_cert=listen_cert or "",
        listen_key=listen_key or "",
        flags=flags,
        rollback=not no_rollback,
        metrics=metrics,
        streams=streams,
    )
    from shadow.live.processes import check_processes, run_processes, shard_folder

    check_processes(processes, settings)
    _warn_insecure(load_config(config).tls, tls)
    parse_methods(mirror_unsafe)
    ensure_writable(db)
    check_setup(settings)
    extra = f" and secondary {settings.secondary}" if settings.secondary else ""
    click.echo(
        f"shadow: listening on {'https' if listen_cert else 'http'}://{host}:{port} -> "
        f"primary {settings.primary}, "
        f"copies to {settings.candidate}{extra}, storing in {db}",
        err=True,
    )
    if processes > 1:
        if not settings.run_id:
            import uuid

            settings.run_id = uuid.uuid4().hex[:12]
        click.echo(
            f"shadow: {processes} proxy processes; while they run: "
            f"shadow report --db '{shard_folder(db, settings.run_id)}'",
            err=True,
        )
        code = run_processes(settings, processes)
    else:
        code = run_proxy(settings, checked=True)
    click.echo(f"shadow: stopped; results in {db} (next: shadow report --db {db})", err=True)
    sys.exit(code)


@cli.command()
@stores_option()
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@click.option("--run", "run_id", default=None, help="Only this run (default: all runs).")
@click.option(
    "--baseline",
    default=None,
    metavar="RUN",
    help="Show per endpoint what got better or worse since this run.",
)
@click.option(
    "--baseline-db",
    default=None,
    type=click.Path(),
    help="Take the baseline from this database, or these stores (a directory or a quoted "
    "glob); default: its latest run.",
)
@click.option(
    "--config",
    default=None,
    type=click.Path(dir_okay=False),
    help="Config whose [[accepted]] entries apply to every run shown (default: each run's "
    "own) and whose [[endpoints]] routes are listed when never exercised.",
)
def report(
    db: str,
    output: str,
    run_id: str | None,
    baseline: str | None,
    baseline_db: str | None,
    config: str | None,
) -> None:
    """Write a self-contained HTML parity report from --db.

    Works while a proxy is still writing to the same file.

    \b
    Examples:
      shadow report --db parity.duckdb -o report.html
      shadow report --db parity.duckdb --baseline 3f2a9c1b7d4e -o report.html
      shadow report --db today.duckdb --baseline-db yesterday.duckdb --config shadow.toml
    """
    from reports import render_report

    routes = None
    accepted = None
    if config:
        from shadow.config.loader import load_config  # imports DeepDiff: only when needed

        cfg = load_config(config)
        accepted = cfg.accepted
        routes = [
            f"{m} {ep.pattern.template}"
            for ep in cfg.endpoints
            for m in (sorted(ep.pattern.methods) if ep.pattern.methods else ["*"])
        ]
    from shadow.store.shards import is_many

    if baseline_db is not None and not is_many(baseline_db) and not os.path.exists(baseline_db):
        raise StoreError(f"baseline database {baseline_db} does not exist")
    summary = render_report(
        db,
        output,
        run_id=run_id,
        baseline=baseline,
        baseline_db=baseline_db,
        routes=routes,
        accepted=accepted,
    )
    click.echo(summary.describe())
    click.echo(f"report: {output}")


def _header_overrides(values: tuple[str, ...], flag: str) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        name, sep, val = value.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"{flag} {value!r}: expected 'Name: value'")
        out.append((name.strip(), val.strip()))
    return tuple(out)


@cli.command()
@click.argument("traffic")
@click.option("--candidate", required=True, help="Base URL of the candidate backend.")
@click.option(
    "--primary",
    default=None,
    help="Base URL of the primary. Without it, recorded responses stand for the primary's.",
)
@click.option(
    "--secondary",
    default=None,
    help="Base URL of a second primary instance, sent safe requests only: "
    "what varies between the two is evidence of noise.",
)
@db_option()
@click.option("--config", type=click.Path(dir_okay=False), help="TOML rules and routes.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["har", "mitm", "gor", "jsonl"]),
    default=None,
    help="File format (default: detected from the content).",
)
@click.option("--concurrency", default=16, show_default=True, help="Requests in flight at most.")
@click.option("--rate", type=float, default=None, help="Requests per second at most.")
@click.option("--sample", type=float, default=1.0, show_default=True, help="Fraction to replay.")
@click.option("--seed", default=0, show_default=True, help="Seed of the sampling.")
@click.option("--method", "methods", multiple=True, help="Only these methods (repeatable).")
@click.option("--path", "paths", multiple=True, help="Only paths matching this glob (repeatable).")
@click.option("--limit", type=int, default=None, help="Replay at most this many requests.")
@click.option(
    "--mirror-unsafe", default="", metavar="METHODS", help='Also replay e.g. "POST,PUT" or "*".'
)
@click.option(
    "--primary-header",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Set this header on requests to the primary (repeatable), e.g. a real Authorization.",
)
@click.option(
    "--candidate-header",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Set this header on requests to the candidate (repeatable).",
)
@click.option("--timeout", default=10.0, show_default=True, help="Per-request timeout, seconds.")
@click.option("--skip-bad", is_flag=True, help="Count and skip bad entries instead of stopping.")
@click.option("--run-id", default="", help="Name of this run in the store (default: random).")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@stream_options
@tls_options
def replay(
    traffic: str,
    candidate: str,
    primary: str | None,
    secondary: str | None,
    db: str,
    config: str | None,
    fmt: str | None,
    concurrency: int,
    rate: float | None,
    sample: float,
    seed: int,
    methods: tuple[str, ...],
    paths: tuple[str, ...],
    limit: int | None,
    mirror_unsafe: str,
    primary_header: tuple[str, ...],
    candidate_header: tuple[str, ...],
    timeout: float,
    skip_bad: bool,
    run_id: str,
    no_progress: bool,
    **tls_args: Any,
) -> None:
    """Replay recorded TRAFFIC (HAR, mitmproxy dump, GoReplay, JSON Lines).

    With --primary, each request goes to both backends; without it, the
    recorded response is compared with the candidate's. Only GET, HEAD and
    OPTIONS are replayed unless --mirror-unsafe or the config allows more.

    \b
    Examples:
      shadow replay traffic.har --primary http://127.0.0.1:3000 --candidate http://127.0.0.1:8000
      shadow replay flows.mitm --candidate http://127.0.0.1:8000 --db parity.duckdb
      shadow replay capture.gor --primary ... --candidate ... --concurrency 16 --rate 200
    """
    import asyncio
    import os

    from shadow.cli.progress import ReplayProgress
    from shadow.config.loader import parse_methods
    from shadow.sources.replay import ReplayOptions
    from shadow.sources.replay import replay as run_replay
    from shadow.store.writer import ensure_writable
    from shadow.urls import parse_backend_url, positive_number

    if not os.path.exists(traffic):
        raise InputError(f"{traffic}: no such file")
    if os.path.isdir(traffic):
        raise InputError(f"{traffic}: is a directory, not a traffic file")
    if not os.access(traffic, os.R_OK):
        raise InputError(f"{traffic}: cannot read it (permission denied)")
    positive_number(timeout, "--timeout")
    if rate is not None:
        positive_number(rate, "--rate", most=1e6)
    tls, copy_proxy = _tls_from_cli(tls_args)
    from shadow.model import DEFAULT_MAX_BODY

    streams = _stream_limits(tls_args, DEFAULT_MAX_BODY)
    from shadow.config.loader import load_config
    from shadow.config.tls import check as check_tls
    from shadow.config.tls import effective

    configured = load_config(config).tls
    for leg, settings in effective(configured, tls).items():
        check_tls(settings, leg)
    _warn_insecure(configured, tls)
    options = ReplayOptions(
        path=traffic,
        candidate=parse_backend_url(candidate, "--candidate"),
        primary=parse_backend_url(primary, "--primary") if primary else None,
        secondary=parse_backend_url(secondary, "--secondary") if secondary else None,
        db=db,
        config=config,
        fmt=fmt,
        concurrency=concurrency,
        rate=rate,
        sample=sample,
        seed=seed,
        methods=frozenset(m.upper() for m in methods),
        paths=paths,
        limit=limit,
        mirror_unsafe=parse_methods(mirror_unsafe),
        primary_headers=_header_overrides(primary_header, "--primary-header"),
        candidate_headers=_header_overrides(candidate_header, "--candidate-header"),
        timeout=timeout,
        skip_bad=skip_bad,
        run_id=run_id,
        tls=tls,
        copy_proxy=copy_proxy,
        streams=streams,
    )
    ensure_writable(db)
    with ReplayProgress(enabled=not no_progress) as progress:
        summary = asyncio.run(run_replay(options, progress.update))
    for line in summary.lines(db):
        click.echo(line)


@cli.command()
@stores_option()
@click.option(
    "--min-parity",
    type=float,
    default=100.0,
    show_default=True,
    metavar="PCT",
    help="Minimum parity (% of compared exchanges that match) for every endpoint.",
)
@click.option(
    "--endpoint",
    "endpoint_thresholds",
    multiple=True,
    metavar="PATTERN=PCT",
    help="Minimum parity for endpoints matching a glob, e.g. 'GET /api/analysis/*=99' "
    "(repeatable; the pattern with the most literal characters wins, then the last given).",
)
@click.option(
    "--max-candidate-errors",
    type=float,
    default=1.0,
    show_default=True,
    metavar="PCT",
    help="Most % of an endpoint's copied requests that may end in a candidate error "
    "(timeout, refused, reset); 100 turns the check off.",
)
@click.option(
    "--endpoint-max-errors",
    "endpoint_errors",
    multiple=True,
    metavar="PATTERN=PCT",
    help="--max-candidate-errors for endpoints matching a glob, e.g. 'GET /api/slow/*=5' "
    "(repeatable; chosen as for --endpoint).",
)
@accepted_config_option()
@click.option(
    "--max-latency-ratio",
    type=float,
    default=None,
    metavar="R",
    help="Most candidate p95 / primary p95 latency per endpoint; only a significant slowdown "
    "fails (Mann-Whitney, at least 50 pairs a side; docs/latency.md).",
)
@click.option(
    "--min-samples",
    type=int,
    default=20,
    show_default=True,
    help="Compared exchanges an endpoint needs to be judged; fewer: INCONCLUSIVE.",
)
@click.option(
    "--allow-inconclusive", is_flag=True, help="Do not fail because of INCONCLUSIVE endpoints."
)
@click.option("--run", "run_id", default=None, help="Only this run (default: all runs).")
@click.option(
    "--junit",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the results as JUnit XML to this file.",
)
@click.option(
    "--fail-on-rollback",
    is_flag=True,
    help="Also fail when a route was rolled back automatically in the selected runs.",
)
@click.option(
    "--max-data-differences",
    "max_data_differences",
    default=None,
    metavar="N",
    help="Also gate the tables `shadow data diff` compared (each table's latest diff, or "
    "those of --run): fail when one has more than N differing rows (0: any).",
)
def check(
    db: str,
    min_parity: float,
    endpoint_thresholds: tuple[str, ...],
    max_candidate_errors: float,
    endpoint_errors: tuple[str, ...],
    config: str | None,
    max_latency_ratio: float | None,
    min_samples: int,
    allow_inconclusive: bool,
    run_id: str | None,
    junit: str | None,
    fail_on_rollback: bool,
    max_data_differences: str | None,
) -> None:
    """Gate a CI job on parity: exit 0 if every endpoint meets its thresholds.

    Parity = match / (match + differ) per endpoint, with verdicts judged from all
    stored evidence (the same figures as `shadow report`; see docs/verdicts.md).
    Candidate errors count against an endpoint too (at most 1 % by default). An
    endpoint with fewer than --min-samples compared exchanges is INCONCLUSIVE:
    never passed, and it fails the gate unless --allow-inconclusive. Endpoints
    whose requests were all skipped (never copied) are listed but not judged. The
    gate also fails when no endpoint could be judged at all, and with
    --fail-on-rollback when the rollback controller rolled a route back.

    With --max-data-differences N every table compared by `shadow data diff`
    (the same figures as the report's Data section) fails when more than N of its
    rows differ; a store of table diffs alone can then be gated without traffic.

    Exit codes: 0 passed, 1 failed, 2 bad option (or --max-data-differences and no
    table diff), 3 database error.

    \b
    Examples:
      shadow check --db parity.duckdb --min-parity 99.5
      shadow check --db parity.duckdb --min-parity 99.5 --endpoint 'GET /api/analysis/*=98' \\
          --max-candidate-errors 0.5 --max-latency-ratio 1.5 --junit parity.xml
      shadow check --db parity.duckdb --max-data-differences 0
    """
    from shadow.review import data_gate, gate
    from shadow.store.writer import reading

    max_data = None
    if max_data_differences is not None:
        max_data = data_gate.parse_max_differences(max_data_differences)
    thresholds = gate.make_thresholds(
        min_parity,
        endpoint_thresholds,
        max_candidate_errors,
        max_latency_ratio,
        min_samples,
        allow_inconclusive,
        endpoint_errors,
    )
    with reading(db, accepted=_accepted(config)) as con:
        rows = gate.fetch_rows(con, run_id)
        rollbacks = gate.fetch_rollbacks(con, run_id) if fail_on_rollback else None
        data = None
        if max_data is not None:
            data = data_gate.fetch_data_tables(con, run_id, max_data, db)
    results = gate.evaluate(rows, thresholds)
    for flag in ("--endpoint", "--endpoint-max-errors"):
        for pattern in gate.unused_patterns(results, thresholds, flag):
            click.echo(f"shadow: warning: {flag} pattern {pattern!r} matches no endpoint", err=True)
    if results:
        click.echo(gate.format_table(results))
    if data:
        click.echo(data_gate.format_data_table(data))
    if rollbacks:
        click.echo(gate.format_rollbacks(rollbacks))
    if junit:
        xml = gate.junit_xml(
            results, thresholds, db=db, run_id=run_id, rollbacks=rollbacks, data=data
        )
        try:
            xml.write(junit, encoding="utf-8", xml_declaration=True)
        except OSError as exc:
            raise ConfigError(f"--junit {junit}: cannot write ({exc.strerror})") from None
    click.echo(gate.summary_line(results, thresholds, rollbacks, data))
    if junit:
        click.echo(f"junit: {junit}")
    sys.exit(0 if gate.passed(results, thresholds, rollbacks, data) else 1)


@cli.command()
@stores_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet"]),
    default="parquet",
    show_default=True,
    help="File format.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to write one file per table into (created if missing).",
)
@click.option("--run", "run_id", default=None, help="Only this run (default: all runs).")
@accepted_config_option()
def export(db: str, fmt: str, output: str, run_id: str | None, config: str | None) -> None:
    """Export the store's tables and the judged outcomes.

    One file per table, named <table>.parquet (runs, exchanges, differences,
    noise_differences, run_accepted, conversations), plus the outcome definition's results:
    exchange_outcomes, difference_outcomes and endpoint_outcomes (the verdicts,
    statuses and figures `shadow report` and `shadow check` show). Existing files
    are replaced.

    \b
    Example:
      shadow export --db parity.duckdb --format parquet -o parity-parquet/
    """
    from shadow.review.export import export_tables
    from shadow.store.writer import reading

    with reading(db, accepted=_accepted(config)) as con:
        written = export_tables(con, output, run_id=run_id, fmt=fmt)
    for item in written:
        click.echo(f"{item.path}  ({item.rows} rows)")
    click.echo(f"export: {len(written)} tables to {output}")


@cli.command()
@db_option(default=None)
def migrate(db: str) -> None:
    """Bring a store of an older schema version up to this shadow's version.

    Readers (report, check, export) never change a store; a store written by an
    older shadow must be migrated once. The proxy and replay migrate the store
    they write to by themselves.

    \b
    Example:
      shadow migrate --db parity.duckdb
    """
    from shadow.store.writer import migrate_file

    if not os.path.exists(db):
        raise StoreError(f"database {db} does not exist")
    before, after = migrate_file(db, check_first=True)
    if before == after:
        click.echo(f"{db}: schema version {after}, nothing to do")
    else:
        click.echo(f"{db}: schema version {before} -> {after}")


@cli.command()
@click.option("--openapi", "openapi", default=None, help="OpenAPI JSON: a file or an http(s) URL.")
@click.option("--nextjs", "nextjs", default=None, type=click.Path(file_okay=False, exists=True),
              help="A Next.js project (pages/api or app/**/route.ts).")  # fmt: skip
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the TOML here (default: print it).")  # fmt: skip
def routes(openapi: str | None, nextjs: str | None, output: str | None) -> None:
    """Print `[[endpoints]]` config entries taken from the services themselves.

    Requests are grouped by these route templates instead of guessed ones.

    \b
    Examples:
      shadow routes --openapi http://127.0.0.1:8000/openapi.json >> shadow.toml
      shadow routes --nextjs ../legacy-app -o routes.toml
    """
    from shadow.config.routes import routes_from_nextjs, routes_from_openapi, routes_to_toml

    if not openapi and not nextjs:
        raise ConfigError("give --openapi SOURCE and/or --nextjs DIR")
    found = [*(routes_from_openapi(openapi) if openapi else []),
             *(routes_from_nextjs(nextjs) if nextjs else [])]  # fmt: skip
    _emit(routes_to_toml(found), output, f"{len(found)} routes")


def _emit(text: str, output: str | None, what: str) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"{what} written to {output}", err=True)


@cli.group()
def rules() -> None:
    """Rules that come from triage of what was stored."""


@rules.command("suggest")
@stores_option()
@click.option("--run", "run_id", default=None, help="Only this run (default: all runs).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the TOML here (default: print it).")  # fmt: skip
@accepted_config_option()
def rules_suggest(db: str, run_id: str | None, output: str | None, config: str | None) -> None:
    """Propose config entries (ignore a noisy path, ignore order, a tolerance).

    Each proposal comes with its evidence as a comment; review it, then merge
    what you agree with into your config. Nothing is applied by itself.

    \b
    Example:
      shadow rules suggest --db parity.duckdb -o suggested.toml
    """
    from shadow.review.triage import suggest_rules, suggestions_to_toml

    found = suggest_rules(db, run_id, _accepted(config))
    if not found:
        click.echo("no suggestions: nothing in the store looks like noise or drift", err=True)
        return
    _emit(suggestions_to_toml(found), output, f"{len(found)} suggestions")


@cli.command()
@click.option("--config", required=True, type=click.Path(dir_okay=False),
              help="TOML config to append to (created if missing).")  # fmt: skip
@click.option("--endpoint", required=True, help='The endpoint, e.g. "GET /api/analysis/{id}".')
@click.option("--path", "path", required=True, help="The difference path, e.g. '$.createdAt'.")
@click.option("--kind", default=None, help="Only differences of this kind (value_changed, ...).")
@click.option("--reason", required=True, help="Why this difference is acceptable.")
def accept(config: str, endpoint: str, path: str, kind: str | None, reason: str) -> None:
    """Record a known, accepted difference (shown as accepted, not counted).

    \b
    Example:
      shadow accept --config shadow.toml --endpoint "GET /api/analysis/{id}" \\
          --path '$.createdAt' --reason "clients parse both ISO forms"
    """
    from shadow.review.accept import accept_difference

    added = accept_difference(config, endpoint, path, reason, kind)
    click.echo(added.strip("\n"))
    click.echo(f"appended to {config}", err=True)


def _register() -> None:
    # Commands that live in modules of their own (each imports what it needs lazily).
    from shadow.cli.data_cmd import data
    from shadow.cli.flags_cmd import flags
    from shadow.cli.sink_cmd import sink_command
    from shadow.cli.status_cmd import status

    cli.add_command(data)
    cli.add_command(flags)
    cli.add_command(status)
    cli.add_command(sink_command())


_register()


def main() -> None:
    cli(prog_name="shadow")


if __name__ == "__main__":
    main()
