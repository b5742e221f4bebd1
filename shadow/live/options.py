"""The addon's options (`--set shadow_...` for mitmdump; `shadow proxy` sets them)."""

from __future__ import annotations

from typing import Any

from shadow.live import tls_options
from shadow.model import DEFAULT_MAX_BODY
from shadow.pipeline.core import DEFAULT_MEMORY_BUDGET


def add_options(loader: Any) -> None:
    """Register every shadow_* option with mitmproxy's loader."""
    loader.add_option(
        "shadow_candidate", str, "",
        """
        Base URL of the candidate backend (e.g. http://127.0.0.1:8000). Each
        request sent to the primary is copied there in the background and the
        two responses are compared. Empty: shadowing is off.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_secondary", str, "",
        """
        Base URL of a second instance of the primary (legacy) backend. Copies of
        safe requests (GET, HEAD, OPTIONS; never unsafe ones, which would write
        there too) also go there; a value that changes between primary and
        secondary is evidence of noise (see docs/verdicts.md).
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_db", str, "parity.duckdb",
        "DuckDB file the exchanges and their differences are written to.",
    )  # fmt: skip
    loader.add_option(
        "shadow_config", str, "",
        """
        TOML file with comparison rules and endpoint routes (see README).
        Empty: default rules.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_mirror_unsafe", str, "",
        """
        Comma-separated methods besides GET, HEAD and OPTIONS that may be copied
        to the candidate ("POST,PUT", or "*" for all). A copied POST writes
        twice, so the default copies none; endpoints can allow it in the config.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_timeout", float, 5.0,
        "Seconds to wait for the candidate before recording a candidate error.",
    )  # fmt: skip
    loader.add_option(
        "shadow_concurrency", int, 32,
        "Maximum copies in flight to the candidate at once.",
    )  # fmt: skip
    loader.add_option(
        "shadow_queue_size", int, 10000,
        """
        Capacity of the queue between the proxy and the comparing worker. When
        it is full, copies are dropped and counted rather than slowing clients.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_drain_timeout", float, 30.0,
        """
        Seconds shutdown waits for copies and comparisons still in flight. What
        is unfinished then is stored as skipped (reason "shutdown: ..."), never
        silently lost.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_max_body", int, DEFAULT_MAX_BODY,
        """
        Bytes of each body held for comparison. A longer answer is compared by
        length and SHA-256 only; a longer request is not copied (skipped).
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_worker_memory", int, DEFAULT_MEMORY_BUDGET,
        """
        Bytes of traffic the worker may hold (requests and answers waiting to be
        compared and stored). Past it, new copies are skipped and counted.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_metrics", str, "",
        """
        Serve Prometheus metrics of the proxy and its worker, and /healthz and
        /readyz, at HOST:PORT (e.g. 127.0.0.1:9464; "" = off). docs/monitoring.md.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_body_cap", int, 65536,
        "Bytes of each body kept in the store for review (longer ones are cut and flagged).",
    )  # fmt: skip
    loader.add_option(
        "shadow_bodies", str, "differ",
        """
        Which exchanges keep their bodies in the store for review: "differ"
        (all but matching ones), "all", or "none". Differences are always kept.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_record", str, "",
        """
        Also record what passed through (request and the primary's response,
        secrets redacted) for `shadow replay`: a .har file, a .jsonl file, or
        any other name for a mitmproxy flow dump. Empty: no recording.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_run_id", str, "",
        "Identifier of this run in the store. Empty: a new random one.",
    )  # fmt: skip
    loader.add_option(
        "shadow_copy_proxy", str, "",
        """
        HTTP proxy the copies go through (http://host:port). Empty: HTTPS_PROXY /
        HTTP_PROXY from the environment unless NO_PROXY (or loopback) exempts
        the backend; "none": never.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_flags", str, "",
        """
        Where the route modes and feature flags live: a JSON file (edited with
        `shadow flags`, watched while the proxy runs) or redis://host:port/db for
        a fleet (keys feature:<name> = "true"/"false"). Empty: the config's
        [control] flags, else shadow-flags.json.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_rollback", bool, True,
        """
        Judge the routes the candidate serves (error, fallback and mismatch rates
        over a sliding window) and roll a failing one back to shadow by writing
        its flag. Off: never roll back automatically.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_stream_seconds", float, 60.0,
        """
        How long one WebSocket conversation or event stream is copied and
        compared; past it the comparison covers what came so far (the client's
        connection goes on untouched).
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_stream_messages", int, 1000,
        "Messages (or events) of one conversation or stream copied and compared at most.",
    )  # fmt: skip
    loader.add_option(
        "shadow_websocket_history", int, -1,
        """
        WebSocket messages mitmproxy keeps in each flow once shadow has copied them:
        -1 keeps all (mitmproxy's way; a long conversation then grows without
        bound), 0 none. `shadow proxy` sets 0: nothing there reads them again.
        """,
    )  # fmt: skip
    loader.add_option(
        "shadow_stream_connections", int, 100,
        "WebSocket conversations copied at once; past it, new ones are skipped and counted.",
    )  # fmt: skip
    tls_options.add_options(loader)
