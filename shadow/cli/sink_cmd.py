"""`shadow sink`: the target of an nginx / Envoy / Istio mirror (docs/deploy.md).

Exit codes: 0 stopped cleanly, 2 bad option or config (no --primary), 3 the store
cannot be written, 6 cannot listen, 7 requests were lost.
"""

from __future__ import annotations

import socket
from typing import Any

import click

from shadow.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:8090"


def _default_db(port: int) -> str:
    return f"sink-{socket.gethostname()}-{port}.duckdb"


def sink_command() -> click.Command:
    """The `sink` command, with the proxy's TLS and stream options (built lazily)."""
    from shadow.cli.main import stream_options, tls_options

    @click.command("sink")
    @click.option(
        "--primary",
        default=None,
        help="Base URL of the primary to call (a staging or replica instance of the legacy "
        "backend: the mirror's own answer never reaches the sink).",
    )
    @click.option("--candidate", default=None, help="Base URL of the candidate backend.")
    @click.option("--secondary", default=None, help="Second primary instance, to learn noise.")
    @click.option(
        "--listen", default=DEFAULT_LISTEN, show_default=True,
        help="HOST:PORT the mirror sends to (0.0.0.0:PORT behind a mirror on another host).",
    )  # fmt: skip
    @click.option(
        "--db", default=None, type=click.Path(dir_okay=False),
        help="This sink's store, its shard (default: sink-<host>-<port>.duckdb).",
    )  # fmt: skip
    @click.option("--config", type=click.Path(dir_okay=False), help="TOML rules and routes.")
    @click.option(
        "--run-id", default="",
        help="Name of the run (default: random); give every sink the same one to read "
        "their shards as one run.",
    )  # fmt: skip
    @click.option(
        "--mirror-unsafe", default="", metavar="METHODS",
        help='Also shadow e.g. "POST,PUT" or "*" (sent to the primary and the candidate).',
    )  # fmt: skip
    @click.option("--timeout", default=10.0, show_default=True, help="Per-request timeout, s.")
    @click.option("--concurrency", default=32, show_default=True, help="Requests in flight.")
    @click.option(
        "--backlog", default=1000, show_default=True,
        help="Mirrored requests held at most; past it new ones are shed (counted).",
    )  # fmt: skip
    @click.option(
        "--max-body", default="8MiB", show_default=True,
        help="Largest request body taken; a longer one is shed (counted).",
    )  # fmt: skip
    @click.option(
        "--drain-timeout", default=30.0, show_default=True,
        help="Seconds a stop waits for requests in flight.",
    )  # fmt: skip
    @stream_options
    @tls_options
    def sink(
        primary: str | None,
        candidate: str | None,
        secondary: str | None,
        listen: str,
        db: str | None,
        config: str | None,
        run_id: str,
        mirror_unsafe: str,
        timeout: float,
        concurrency: int,
        backlog: int,
        max_body: str,
        drain_timeout: float,
        **tls_args: Any,
    ) -> None:
        """Receive requests an existing proxy mirrors and shadow each one.

        Point nginx's `mirror`, Envoy's `request_mirror_policies` or Istio's
        `mirror` here. Each request is answered at once (204, the mirror ignores it)
        and sent to --primary, --secondary and --candidate by the sink itself; the
        comparison goes into this sink's own store. Run several sinks behind the
        mirror, each with its own --db, and read them together:
        `shadow report --db 'shards/*.duckdb'`. See docs/deploy.md.

        Exit codes: 0 stopped, 2 bad option, 3 store, 6 cannot listen, 7 requests lost.

        \b
        Example:
          shadow sink --listen 0.0.0.0:8090 --primary http://legacy-staging:3000 \\
              --candidate http://fastapi:8000 --db shards/sink-a.duckdb --run-id rollout-1
        """
        from shadow.cli.main import _stream_limits, _tls_from_cli, _warn_insecure
        from shadow.config.loader import load_config, parse_methods
        from shadow.config.tls import check as check_tls
        from shadow.config.tls import effective
        from shadow.sink.server import SinkOptions, serve
        from shadow.store.writer import ensure_writable
        from shadow.urls import (
            check_listen,
            parse_backend_url,
            parse_listen,
            parse_size,
            positive_number,
        )

        if not primary:
            raise ConfigError(
                "shadow sink needs --primary: the instance each mirrored request is sent to "
                "(the mirror's own answer never reaches the sink)"
            )
        if not candidate:
            raise ConfigError("shadow sink needs --candidate: the backend to compare with")
        host, port = parse_listen(listen)
        positive_number(timeout, "--timeout")
        positive_number(drain_timeout, "--drain-timeout")
        for name, value in (("--concurrency", concurrency), ("--backlog", backlog)):
            if value < 1:
                raise ConfigError(f"{name} {value}: expected at least 1")
        max_body_bytes = parse_size(max_body, "--max-body")
        tls, copy_proxy = _tls_from_cli(tls_args)
        streams = _stream_limits(tls_args, max_body_bytes)
        configured = load_config(config).tls
        for leg, settings in effective(configured, tls).items():
            check_tls(settings, leg)
        _warn_insecure(configured, tls)
        store = db or _default_db(port)
        options = SinkOptions(
            primary=parse_backend_url(primary, "--primary"),
            candidate=parse_backend_url(candidate, "--candidate"),
            secondary=parse_backend_url(secondary, "--secondary") if secondary else None,
            db=store,
            host=host,
            port=port,
            config=config,
            run_id=run_id,
            mirror_unsafe=parse_methods(mirror_unsafe),
            timeout=timeout,
            concurrency=concurrency,
            backlog=backlog,
            max_body=max_body_bytes,
            drain_timeout=drain_timeout,
            tls=tls,
            copy_proxy=copy_proxy,
            streams=streams,
        )
        check_listen(host, port)  # before the store is created: nothing left behind
        ensure_writable(store)
        code = serve(options)
        click.echo(f"shadow sink: stopped; results in {store} (next: shadow report --db {store})")
        raise SystemExit(code)

    return sink
