"""`shadow data diff`: compare a legacy table with its migrated copy (docs/data.md).

Exit codes: 0 the tables agree, 1 rows differ, 2 bad options or config (a missing key
column, a key that is not unique, types that cannot be compared), 3 the store cannot
be written, 9 a database cannot be reached, logged into or queried (a missing table).
Nothing is stored unless every table was compared.
"""

from __future__ import annotations

import click

SHOWN = 10  # differences printed per table (all are stored, up to --max-rows rows)


@click.group("data")
def data() -> None:
    """Verify migrated data: compare tables of the legacy and the new database."""


def _positive(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1:
        raise click.BadParameter("must be at least 1")
    return value


@data.command("diff")
@click.option(
    "--old", "old_url", required=True, help="Legacy database: postgresql://... or sqlite:PATH."
)
@click.option(
    "--new", "new_url", required=True, help="Migrated database: postgresql://... or sqlite:PATH."
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="OLD[:NEW]",
    help="Table to compare (repeatable); default: every [data.tables.NAME] of --config.",
)
@click.option("--key", default=None, metavar="COLUMN[,COLUMN]", help="Key column(s), old names.")
@click.option(
    "--config", type=click.Path(dir_okay=False), help="TOML with [data.tables.NAME] and [compare]."
)
@click.option(
    "--db",
    default="parity.duckdb",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Store the result as a run (source data:<table>) in this DuckDB file.",
)
@click.option("--no-store", is_flag=True, help="Only print the result.")
@click.option(
    "--since",
    default=None,
    metavar="COLUMN",
    help="Timestamp column of last change: with --min-age, younger rows are in flight.",
)
@click.option(
    "--min-age",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Rows changed less than this long ago (on either side) are not compared.",
)
@click.option(
    "--segments",
    type=click.IntRange(2, 4096),
    default=32,
    show_default=True,
    callback=_positive,
    help="Parts a key range is cut into (and cut again when it differs).",
)
@click.option(
    "--bisection-threshold",
    "threshold",
    type=int,
    default=16384,
    show_default=True,
    callback=_positive,
    help="Rows a part may hold before its rows are read.",
)
@click.option("--no-bisect", is_flag=True, help="Read and compare every row (no checksums).")
@click.option(
    "--max-rows",
    type=int,
    default=1000,
    show_default=True,
    callback=_positive,
    help="Differing rows whose differences are stored; the rest are counted.",
)
@click.option(
    "--max-duplicates",
    type=int,
    default=100,
    show_default=True,
    help="Keys held by several rows that are reported; more and the key is refused.",
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for a database to connect.",
)
def diff(
    old_url: str, new_url: str, tables: tuple[str, ...], key: str | None, config: str | None,
    db: str, no_store: bool, since: str | None, min_age: float | None, segments: int,
    threshold: int, no_bisect: bool, max_rows: int, max_duplicates: int, timeout: float,
) -> None:  # fmt: skip
    """Compare tables row by row, checksums pushed down into each database."""
    import math

    from shadow.config.data import MAX_AGE
    from shadow.config.loader import load_config
    from shadow.data.dburl import parse_database_url
    from shadow.data.record import new_run_id, store_results
    from shadow.data.run import (
        DiffOptions,
        check_store_path,
        diff_tables,
        run_options,
        select_tables,
    )
    from shadow.errors import ConfigError
    from shadow.pipeline.redact import redactor_for

    if min_age is not None and not (math.isfinite(min_age) and 0 <= min_age <= MAX_AGE):
        raise ConfigError(f"--min-age must be a number of seconds, 0 to {MAX_AGE:.0f}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError("--timeout must be a positive number of seconds")
    if max_duplicates < 0:
        raise ConfigError("--max-duplicates must be 0 or more")
    cfg = load_config(config)
    old = parse_database_url(old_url, "--old")
    new = parse_database_url(new_url, "--new")
    keys = [k.strip() for k in key.split(",")] if key else []
    if key is not None and not all(keys):
        raise ConfigError(f"--key {key!r}: empty column name")
    chosen = select_tables(cfg, tables, keys, since, min_age)
    if not no_store:
        check_store_path(db)
    options = DiffOptions(segments, threshold, not no_bisect, max_rows, max_duplicates, timeout)
    results = diff_tables(old, new, chosen, cfg, options)
    redactor = redactor_for(cfg.redact)
    stored = [
        (new_run_id(r.name), r, started, run_options(t, options))
        for (r, started), t in zip(results, chosen, strict=True)
    ]
    for _, r, _, _ in stored:
        _print(r, redactor)
    if not no_store:
        store_results(db, stored, redactor)
        click.echo(f"stored {len(stored)} run(s) in {db}: shadow report --db {db}")
    if any(r.differing_rows for r, _ in results):
        raise SystemExit(1)


def _print(r: object, redactor: object) -> None:
    from shadow.data.diff import TableResult
    from shadow.data.record import redacted
    from shadow.pipeline.redact import Redactor

    assert isinstance(r, TableResult) and isinstance(redactor, Redactor)
    verdict = "agree" if not r.differing_rows else f"{r.differing_rows} differ"
    click.echo(
        f"{r.name} ({r.old_table} -> {r.new_table}, key {', '.join(r.keys)}): "
        f"{r.old_rows} rows old, {r.new_rows} new: {verdict} "
        f"({r.changed_rows} changed, {r.missing_rows} only in old, {r.extra_rows} only in new, "
        f"{r.duplicate_keys} duplicate keys)"
    )
    total = r.old_rows + r.new_rows
    click.echo(
        f"  read {r.rows_read_old + r.rows_read_new} of {total} rows, "
        f"{r.segments_read} of {r.segments_checked} segments; {r.elapsed_s:.2f} s"
        + (f"; {r.in_flight} rows in flight skipped" if r.in_flight else "")
    )
    for d in r.differences[:SHOWN]:
        shown = redacted(d, r.keys, redactor)
        old_text = _shown(d.kind, "added", shown.old)
        new_text = _shown(d.kind, "removed", shown.new)
        click.echo(f"  {shown.path}  {d.kind}  {old_text} -> {new_text}")
    if len(r.differences) > SHOWN:
        click.echo(f"  ... {len(r.differences) - SHOWN} more differences (shadow report)")
    if r.rows_dropped:
        click.echo(f"  {r.rows_dropped} more differing rows counted, not stored (--max-rows)")
    if r.only_old:
        click.echo(f"  not compared, only in old: {', '.join(r.only_old)} (rename or ignore)")
    if r.only_new:
        click.echo(f"  not compared, only in new: {', '.join(r.only_new)}")


def _shown(kind: str, absent: str, value: object) -> str:
    """A printed value: `(absent)` for the missing side of a whole row, `at most 1` for
    the side of a duplicated key that holds it once or not at all."""
    from shadow.data.record import stored_value

    if kind == absent:
        return "(absent)"
    if kind == "duplicate" and value is None:
        return "at most 1"
    return str(stored_value(kind, absent, value))
