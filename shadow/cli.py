"""The `shadow` command line: proxy, report, and the subcommands later issues add."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from shadow.errors import ConfigError, InputError, ShadowError


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


def db_option(default: str | None = "parity.duckdb") -> Callable[[Any], Any]:
    return click.option(
        "--db",
        default=default,
        show_default=True,
        required=default is None,
        type=click.Path(dir_okay=False),
        help="DuckDB file holding exchanges and differences.",
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shadow-parity")
def cli() -> None:
    """Shadow traffic from a primary backend to a candidate and report parity."""


@cli.command()
@click.option("--primary", required=True, help="Base URL of the primary (legacy) backend.")
@click.option("--candidate", required=True, help="Base URL of the candidate (new) backend.")
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
@click.option("--quiet", "-q", is_flag=True, help="Do not print mitmproxy's log.")
def proxy(
    primary: str,
    candidate: str,
    listen: str,
    db: str,
    config: str | None,
    mirror_unsafe: str,
    timeout: float,
    concurrency: int,
    queue_size: int,
    confdir: str,
    run_id: str,
    record: str,
    quiet: bool,
) -> None:
    """Reverse-proxy to PRIMARY and copy each request to CANDIDATE.

    Clients get the primary's answers unchanged; copies are compared in a
    worker process and stored in --db. Stop with Ctrl-C: everything queued is
    written first.

    \b
    Example:
      shadow proxy --primary http://127.0.0.1:3000 --candidate http://127.0.0.1:8000 \\
          --listen 127.0.0.1:8080 --db parity.duckdb --config shadow.toml
    """
    import os

    from shadow.config import load_config, parse_methods
    from shadow.proxy import ProxySettings, parse_listen, run_proxy
    from shadow.store import ensure_writable
    from shadow.urls import parse_backend_url

    host, port = parse_listen(listen)
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
        confdir=os.path.expanduser(confdir),
        run_id=run_id,
        record=record,
        quiet=quiet,
    )
    load_config(config)
    parse_methods(mirror_unsafe)
    ensure_writable(db)
    click.echo(
        f"shadow: listening on http://{host}:{port} -> primary {settings.primary}, "
        f"copies to {settings.candidate}, storing in {db}",
        err=True,
    )
    code = run_proxy(settings)
    click.echo(f"shadow: stopped; results in {db} (next: shadow report --db {db})", err=True)
    sys.exit(code)


@cli.command()
@db_option()
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@click.option("--run", "run_id", default=None, help="Only this run (default: all runs).")
def report(db: str, output: str, run_id: str | None) -> None:
    """Write a self-contained HTML parity report from --db.

    Works while a proxy is still writing to the same file.

    \b
    Example:
      shadow report --db parity.duckdb -o report.html
    """
    from reports import render_report

    summary = render_report(db, output, run_id=run_id)
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
@click.argument("traffic", type=click.Path(dir_okay=False))
@click.option("--candidate", required=True, help="Base URL of the candidate backend.")
@click.option(
    "--primary",
    default=None,
    help="Base URL of the primary. Without it, recorded responses stand for the primary's.",
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
def replay(
    traffic: str,
    candidate: str,
    primary: str | None,
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

    from shadow.config import parse_methods
    from shadow.progress import ReplayProgress
    from shadow.replay import ReplayOptions
    from shadow.replay import replay as run_replay
    from shadow.store import ensure_writable
    from shadow.urls import parse_backend_url

    if not os.path.exists(traffic):
        raise InputError(f"{traffic}: no such file")
    options = ReplayOptions(
        path=traffic,
        candidate=parse_backend_url(candidate, "--candidate"),
        primary=parse_backend_url(primary, "--primary") if primary else None,
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
    )
    ensure_writable(db)
    with ReplayProgress(enabled=not no_progress) as progress:
        summary = asyncio.run(run_replay(options, progress.update))
    for line in summary.lines(db):
        click.echo(line)


def main() -> None:
    cli(prog_name="shadow")


if __name__ == "__main__":
    main()
