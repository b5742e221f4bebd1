"""`shadow flags`: read and change route modes and feature flags in the flag store.

The store is a JSON file (default `shadow-flags.json`, beside the config) or
Redis (`redis://host:6379/0`); see shadow/control/flags.py for both layouts.
A running proxy picks changes up within a second.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from shadow.config.control import ControlConfig, RouteMode
    from shadow.config.loader import Config
    from shadow.control.flags import Change, FlagState, FlagStore

DEFAULT_CONFIG = "shadow.toml"
DEFAULT_DB = "shadow.duckdb"
_T = TypeVar("_T")


@dataclass
class _Context:
    """The config a command runs under and the flag store it talks to."""

    config: Config
    config_path: str | None
    store: FlagStore

    @property
    def control(self) -> ControlConfig:
        return self.config.control


def _store_options(f: Any) -> Any:
    """--config and --flags, shared by every `shadow flags` command."""
    f = click.option(
        "--flags", "flags_spec", default=None, metavar="SPEC",
        help="Flag store: a JSON file or redis://host:port/db (default: the config's "
        "[control] flags, else shadow-flags.json beside the config).",
    )(f)  # fmt: skip
    return click.option(
        "--config", default=None, type=click.Path(dir_okay=False),
        help=f"TOML config with [[endpoints]] and [control] (default: {DEFAULT_CONFIG} "
        "if it exists).",
    )(f)  # fmt: skip


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_WHY = 2000  # characters of --why kept (a store has a size limit; the kill switch must fit)
MAX_BY = 200


def _bounded_text(limit: int) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            from shadow.errors import ConfigError

            raise ConfigError(f"--{param.name}: at most {limit} characters ({len(value)} given)")
        if isinstance(value, str):
            # One line in the history, `list` and the report: line breaks become spaces.
            value = _LINE_BREAKS.sub(" ", value).strip()
        return value

    return check


def _change_options(f: Any) -> Any:
    """--by and --why, kept with each change in the store's history."""
    f = click.option(
        "--why", default="", callback=_bounded_text(MAX_WHY), help="Why (kept in the history)."
    )(f)
    return click.option(
        "--by", default=None, metavar="WHO", callback=_bounded_text(MAX_BY),
        help="Who makes the change (default: $SHADOW_USER, else your login name).",
    )(f)  # fmt: skip


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _run(
    config: str | None, flags_spec: str | None, work: Callable[[_Context], Coroutine[Any, Any, _T]]
) -> _T:
    """Open the config and the store, run `work`, close the store."""
    from shadow.config.control import flags_spec as flags_spec_for
    from shadow.config.loader import load_config
    from shadow.control.flags import open_store

    if config is None and os.path.exists(DEFAULT_CONFIG):
        config = DEFAULT_CONFIG
    loaded = load_config(config)
    # The proxy's own choice (the same function): both sides open the same store.
    store = open_store(flags_spec_for(flags_spec or "", loaded.control, config))
    ctx = _Context(loaded, config, store)

    async def main() -> _T:
        try:
            return await work(ctx)
        finally:
            await store.aclose()

    return asyncio.run(main())


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        return os.environ.get("SHADOW_USER") or getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _iso(at: float) -> str:
    if not at:
        return ""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _flag_text(value: bool | None) -> str:
    return "unset" if value is None else "true" if value else "false"


def _warn(problems: Iterable[str], where: str) -> None:
    for problem in problems:
        click.echo(f"shadow: warning: {where}: {problem} (skipped)", err=True)


def _config_routes(config: Config) -> set[str]:
    return {e.pattern.template for e in config.endpoints} | set(config.control.routes)


def _route_row(control: ControlConfig, state: FlagState, route: str) -> dict[str, Any]:
    """What `list`, `get` show of a route: its mode (stored, else configured) and flag."""
    from shadow.control.routing import effective_mode

    own = control.route(route)
    record = state.routes.get(route)
    mode = record or own.mode
    source = "store" if record else "config" if route in control.routes else "default"
    # What a proxy reading this store runs: a false feature flag holds a canary back.
    runs = effective_mode(control, state, route, stale=False, ever_read=True)
    return {
        "route": route, "mode": mode.mode, "percent": mode.percent, "label": mode.label(),
        "runs": runs.label(),
        "reverse": mode.reverse, "source": source, "flag": own.flag,
        "flag_value": state.features.get(own.flag), "by": mode.by, "why": mode.why,
        "at": _iso(mode.at), "rolled_back": mode.rolled_back,
    }  # fmt: skip


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


@click.group("flags")
def flags() -> None:
    """Route modes and feature flags in the flag store (a JSON file or Redis).

    \b
    Examples:
      shadow flags list
      shadow flags set /api/analysis/{id} canary --percent 10 --why "first users"
      shadow flags disable new_backend --why "incident 42"
      shadow flags history --limit 20
    """


@flags.command("list")
@_store_options
@_json_option
def list_flags(config: str | None, flags_spec: str | None, as_json: bool) -> None:
    """Each route's mode and flag, then the feature flags of no route.

    Routes are those of the config's [[endpoints]] and those with a record in
    the store. A route's mode is its record in the store, else the config's.

    \b
    Example:
      shadow flags list --flags redis://127.0.0.1:6379/0 --json
    """

    async def work(ctx: _Context) -> dict[str, Any]:
        configured = _config_routes(ctx.config)
        flags_of = {ctx.control.route(r).flag for r in configured}
        state = await ctx.store.read(flags_of | {ctx.control.flag} - {""})
        if set(state.routes) - configured:  # routes only the store knows: their flags too
            flags_of |= {ctx.control.route(r).flag for r in state.routes}
            state = await ctx.store.read(flags_of | {ctx.control.flag} - {""})
        everything = await ctx.store.features()
        rows = [_route_row(ctx.control, state, r) for r in sorted(configured | set(state.routes))]
        linked = {row["flag"] for row in rows}
        return {
            "store": ctx.store.describe(),
            "routes": rows,
            "features": {k: v for k, v in sorted(everything.items()) if k not in linked},
            "gate": ctx.control.flag,
            "problems": list(state.problems),
        }

    out = _run(config, flags_spec, work)
    _warn(out["problems"], out["store"])
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if out["routes"]:
        head = ["ROUTE", "MODE", "FLAG", "VALUE", "BY", "AT", "ROLLED BACK", "WHY"]
        lines = [head] + [
            [r["route"],
             r["label"] if r["runs"] == r["label"] else f"{r['label']} (runs {r['runs']})",
             r["flag"], _flag_text(r["flag_value"]), r["by"], r["at"],
             "yes" if r["rolled_back"] else "", r["why"]]
            for r in out["routes"]
        ]  # fmt: skip
        for line in _table(lines):
            click.echo(line)
    else:
        click.echo("no routes (declare them as [[endpoints]] in the config)")
    if out["features"]:
        click.echo("\nfeature flags:")
        for name, value in out["features"].items():
            gate = "  (gates every route: [control] flag)" if name == out["gate"] else ""
            click.echo(f"  {name} = {_flag_text(value)}{gate}")
    click.echo(f"\nstore: {out['store']}")


@flags.command("get")
@click.argument("name", metavar="ROUTE_OR_FLAG")
@_store_options
@_json_option
def get_flag(name: str, config: str | None, flags_spec: str | None, as_json: bool) -> None:
    """One route's mode (a name starting with /) or one feature flag's value.

    \b
    Examples:
      shadow flags get /api/analysis/{id}
      shadow flags get new_backend --json
    """
    is_route = name.startswith("/")
    target = name if is_route else _feature_name(name)

    async def work(ctx: _Context) -> tuple[dict[str, Any], FlagState, str]:
        if is_route:
            state = await ctx.store.read({ctx.control.route(target).flag})
            return _route_row(ctx.control, state, target), state, ctx.store.describe()
        state = await ctx.store.read({target})
        return {"flag": target, "value": state.features.get(target)}, state, ctx.store.describe()

    row, state, where = _run(config, flags_spec, work)
    _warn(state.problems, where)
    if as_json:
        click.echo(json.dumps(row, indent=2))
    elif not is_route:
        click.echo(f"{target} = {_flag_text(row['value'])}")
    else:
        shown = dict(row, flag=f"{row['flag']} = {_flag_text(row['flag_value'])}")
        for key in ("route", "label", "source", "flag", "reverse", "by", "why", "at"):
            value = shown[key]
            text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            click.echo(f"{'mode' if key == 'label' else key:<12}{text}")
        click.echo(f"{'rolled back':<12}{'yes' if row['rolled_back'] else 'no'}")


def _feature_name(name: str) -> str:
    """A flag's name; `feature:x` (its Redis key) means x."""
    from shadow.config.control import check_flag_name

    return check_flag_name(name.removeprefix("feature:"))


@flags.command("set")
@click.argument("route")
@click.argument("mode")
@click.option("--percent", default=None, metavar="N", help="Users the candidate answers (canary).")
@click.option(
    "--reverse/--no-reverse", default=None,
    help="While the candidate answers, copy safe requests to the primary and compare "
    "(default: the route's reverse in the config, else yes).",
)  # fmt: skip
@click.option(
    "--db", default=None, type=click.Path(dir_okay=False),
    help=f"A store whose routes may be set too (default: {DEFAULT_DB} if it exists).",
)  # fmt: skip
@_change_options
@_store_options
def set_route(
    route: str,
    mode: str,
    percent: str | None,
    reverse: bool | None,
    db: str | None,
    by: str | None,
    why: str,
    config: str | None,
    flags_spec: str | None,
) -> None:
    """Set a route's MODE: legacy, shadow, canary (with --percent) or candidate.

    Its feature flag is set with it: true when the candidate answers users
    (canary above 0 %, candidate), false otherwise.

    \b
    Examples:
      shadow flags set /api/analysis/{id} canary --percent 10 --why "first users"
      shadow flags set /api/analysis/{id} candidate --no-reverse --by alice
      shadow flags set /api/analysis/{id} legacy --why "rollback by hand"
    """
    import time

    from shadow.config.control import check_mode
    from shadow.control.flags import Change

    wanted = check_mode(mode, percent)

    async def work(ctx: _Context) -> tuple[RouteMode, RouteMode, str, str, list[str]]:
        own = ctx.control.route(route)
        state = await ctx.store.read({own.flag})
        _check_route(route, ctx, state, db)
        before = state.routes.get(route) or own.mode
        record = replace(
            wanted,
            reverse=own.mode.reverse if reverse is None else reverse,
            by=_actor(by),
            why=why,
            at=time.time(),
            rolled_back=False,
        )
        change = Change.new(
            "route", record.by, why, route=route, flag=own.flag,
            before=before.label(), after=record.label(),
        )  # fmt: skip
        # A flag several routes share stays true while another of them is served by the
        # candidate: taking one route back must not silently take back the others.
        sharing = sorted(
            other
            for other in {*ctx.control.routes, *state.routes} - {route}
            if ctx.control.route(other).flag == own.flag
            and (state.routes.get(other) or ctx.control.route(other).mode).serving
        )
        # (A flag already false, a kill switch, stays as it is either way.)
        keep = not record.serving and bool(sharing) and state.features.get(own.flag) is not False
        await ctx.store.set_route(route, record, own.flag, change, write_flag=not keep)
        return before, record, own.flag, ctx.store.describe(), sharing if keep else []

    before, record, flag, where, sharing = _run(config, flags_spec, work)
    reverse_text = "" if record.mode in ("legacy", "shadow") or record.reverse else ", no reverse"
    click.echo(f"{route}: {before.label()} -> {record.label()}{reverse_text}")
    if sharing:
        click.echo(f"flag {flag} stays true: the candidate still serves {', '.join(sharing)}")
    else:
        click.echo(f"flag {flag} = {_flag_text(record.serving)}  ({where})")


def _check_route(route: str, ctx: _Context, state: FlagState, db: str | None) -> None:
    """ControlError unless `route` is configured, already stored, or seen in a --db store."""
    from shadow.config.control import ControlError

    known = _config_routes(ctx.config) | set(state.routes)
    if route in known:
        return
    seen = _db_routes(db)
    if route in seen:
        return
    names = sorted(known | seen)
    listed = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "none"
    where = ctx.config_path or DEFAULT_CONFIG
    raise ControlError(
        f"unknown route {route!r} (known: {listed}); "
        f'declare it as [[endpoints]] route = "{route}" in {where}'
    )


def _db_routes(db: str | None) -> set[str]:
    """The routes of the endpoints ("GET /a/{id}") a shadow store has seen."""
    if db is None:
        if not os.path.exists(DEFAULT_DB):
            return set()
        db = DEFAULT_DB
    from shadow.store.writer import reading

    with reading(db) as con:
        rows = con.execute("SELECT DISTINCT endpoint FROM exchanges").fetchall()
    return {str(e).partition(" ")[2] for (e,) in rows if e and " " in str(e)}


@flags.command("enable")
@click.argument("name")
@_change_options
@_store_options
def enable(name: str, by: str | None, why: str, config: str | None, flags_spec: str | None) -> None:
    """Set feature flag NAME to true.

    \b
    Example:
      shadow flags enable new_backend --why "go"
    """
    _set_feature(name, True, by, why, config, flags_spec)


@flags.command("disable")
@click.argument("name")
@_change_options
@_store_options
def disable(
    name: str, by: str | None, why: str, config: str | None, flags_spec: str | None
) -> None:
    """Set feature flag NAME to false (every route it gates goes back to the primary).

    \b
    Example:
      shadow flags disable new_backend --why "incident 42"
    """
    _set_feature(name, False, by, why, config, flags_spec)


def _set_feature(
    name: str, value: bool, by: str | None, why: str, config: str | None, flags_spec: str | None
) -> None:
    from shadow.control.flags import Change

    flag = _feature_name(name)

    async def work(ctx: _Context) -> tuple[bool | None, str]:
        before = (await ctx.store.read({flag})).features.get(flag)
        change = Change.new(
            "feature", _actor(by), why, flag=flag,
            before=None if before is None else _flag_text(before), after=_flag_text(value),
        )  # fmt: skip
        await ctx.store.set_feature(flag, value, change)
        return before, ctx.store.describe()

    before, where = _run(config, flags_spec, work)
    click.echo(f"{flag}: {_flag_text(before)} -> {_flag_text(value)}  ({where})")


@flags.command("history")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="The last N changes.")  # fmt: skip
@_store_options
@_json_option
def history(limit: int, config: str | None, flags_spec: str | None, as_json: bool) -> None:
    """The last changes of route modes and flags, oldest first.

    \b
    Example:
      shadow flags history --limit 50
    """

    async def work(ctx: _Context) -> list[Change]:
        return await ctx.store.history(limit)

    changes = _run(config, flags_spec, work)
    if as_json:
        click.echo(json.dumps([dict(c.to_json(), at_iso=_iso(c.at)) for c in changes], indent=2))
        return
    if not changes:
        click.echo("no changes yet")
        return
    rows = [
        [_iso(c.at), c.actor, c.route or f"flag {c.flag}", f"{c.before or 'unset'} -> {c.after}",
         c.reason]
        for c in changes
    ]  # fmt: skip
    for line in _table(rows):
        click.echo(line)


__all__ = ["flags"]
