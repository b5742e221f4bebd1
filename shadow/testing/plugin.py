"""shadow's pytest plugin (entry point `pytest11`): old-vs-new parity in a test suite.

Fixtures: `shadow_pair` (one request to both backends, judged by the harness's
rules), `shadow_flag_pair` (the same backend with a route or flag set to legacy,
then candidate), and `shadow_primary` / `shadow_candidate` / `shadow_secondary`
(the backends: override them in a conftest to hand over app objects). Marker:
`@pytest.mark.shadow(route=..., **compare rules)`. Sources of test items:
`--shadow-replay FILE`, `--shadow-openapi SOURCE`. `--shadow-db FILE` stores
every comparison as one run. docs/pytest.md has the whole story.

This module is imported by every pytest run where shadow is installed: it imports
nothing heavy until a shadow option, fixture or item is used.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from shadow.config.loader import Config
    from shadow.testing.backends import Backend
    from shadow.testing.pair import PairResult, ShadowPair
    from shadow.testing.session_store import SessionStore

LEGS = ("primary", "candidate", "secondary")
SECTION = "shadow parity"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shadow", "shadow: old-vs-new parity (docs/pytest.md)")
    for leg in LEGS:
        group.addoption(
            f"--shadow-{leg}",
            dest=f"shadow_{leg}",
            metavar="URL|MODULE:APP",
            help=f"the {leg} backend: a base URL, or an ASGI/WSGI app as module:attribute"
            + (
                " ('primary': the primary asked again, to learn noise)"
                if leg == "secondary"
                else ""
            ),
        )
        parser.addini(f"shadow_{leg}", f"the {leg} backend (as --shadow-{leg})")
    group.addoption(
        "--shadow-config",
        dest="shadow_config",
        metavar="FILE",
        help="shadow.toml with the comparison rules (default: the ini's shadow_config)",
    )
    parser.addini("shadow_config", "shadow.toml with the comparison rules")
    group.addoption(
        "--shadow-db",
        dest="shadow_db",
        metavar="FILE",
        help="store every comparison of the session as one run in this DuckDB file",
    )
    group.addoption(
        "--shadow-replay",
        dest="shadow_replay",
        action="append",
        default=[],
        metavar="FILE",
        help="one test per recorded exchange of a traffic file",
    )
    group.addoption(
        "--shadow-format",
        dest="shadow_format",
        metavar="FMT",
        help="the traffic file's format (har, mitm, gor, jsonl; default: detected)",
    )
    group.addoption(
        "--shadow-skip-bad",
        dest="shadow_skip_bad",
        action="store_true",
        help="pass over bad entries of a traffic file instead of stopping",
    )
    group.addoption(
        "--shadow-route",
        dest="shadow_route",
        action="append",
        default=[],
        metavar="ROUTE",
        help="replay only this route template or path glob",
    )
    group.addoption(
        "--shadow-method",
        dest="shadow_method",
        action="append",
        default=[],
        metavar="METHOD",
        help="replay only this method (repeatable)",
    )
    group.addoption(
        "--shadow-unsafe",
        dest="shadow_unsafe",
        default="",
        metavar="METHODS",
        help="also send these unsafe methods (POST,PUT,...; 'all') when replaying "
        "or generating; the config's mirror_unsafe allows them per route",
    )
    group.addoption(
        "--shadow-openapi",
        dest="shadow_openapi",
        metavar="SOURCE",
        help="differential tests per operation of an OpenAPI document: a file, a "
        "URL, or a path on the candidate (/openapi.json)",
    )
    group.addoption(
        "--shadow-examples",
        dest="shadow_examples",
        type=int,
        default=200,
        metavar="N",
        help="requests generated per operation (default 200)",
    )
    group.addoption(
        "--shadow-timeout",
        dest="shadow_timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time a backend may take to answer (default 10)",
    )
    group.addoption(
        "--shadow-flags",
        dest="shadow_flags",
        metavar="FILE|REDIS_URL",
        help="the flag store shadow_flag_pair writes (default: the config's)",
    )
    parser.addini("shadow_flags", "the flag store shadow_flag_pair writes")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shadow(route=None, **rules): this test's route and comparison rules "
        "(ignore_paths=[...], masks=[...], ...: the keys of shadow.toml's [compare])",
    )
    config.addinivalue_line("markers", "shadow_replay: a recorded exchange (--shadow-replay)")
    config.addinivalue_line("markers", "shadow_openapi: an OpenAPI operation (--shadow-openapi)")
    config.stash[STATE] = ShadowState(config)  # cheap: it opens nothing without an option


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name, None)
    if value in (None, "", []):
        ini: str = str(config.getini(name) or "") if name in _INI else ""
        # A file named in the ini file is found beside it, wherever pytest runs.
        where = config.inipath
        relative = "://" not in ini and not os.path.isabs(os.path.expanduser(ini))
        if ini and name in _INI_FILES and where is not None and relative:
            ini = str(where.parent / ini)
        return ini or None
    return value


_INI = {"shadow_primary", "shadow_candidate", "shadow_secondary", "shadow_config", "shadow_flags"}
_INI_FILES = {"shadow_config", "shadow_flags"}
MAX_BACKENDS = 32  # backends kept open at once (fixtures may hand over a new app per test)


class ShadowState:
    """What a session shares: the config, the backends, the store, the sources' options."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self._config: Config | None = None
        self.specs: dict[str, Any] = {leg: _option(config, f"shadow_{leg}") for leg in LEGS}
        self.db: str | None = _option(config, "shadow_db")
        self.replay: list[str] = config.getoption("shadow_replay") or []
        self.openapi: str | None = _option(config, "shadow_openapi")
        self.fmt: str | None = _option(config, "shadow_format")
        self.skip_bad = bool(config.getoption("shadow_skip_bad", False))
        timeout = config.getoption("shadow_timeout", None)
        examples = config.getoption("shadow_examples", None)
        self.timeout = 10.0 if timeout is None else float(timeout)
        self.examples = 200 if examples is None else int(examples)
        self.seed = int(config.getoption("shadow_seed", 0) or 0)
        self.run_id = uuid.uuid4().hex[:12]
        # Newest last; each entry keeps its spec alive, so that its id() keys it safely.
        self._backends: OrderedDict[tuple[str, int], tuple[Any, Backend]] = OrderedDict()
        self._failed: dict[tuple[str, int], tuple[Any, str]] = {}  # specs that did not start
        self._store: SessionStore | None = None
        self._cursors: dict[str, Any] = {}
        self.compared = 0
        self.store_problem = ""
        self._closed = False
        self.unsafe: frozenset[str] = frozenset()
        if self.active:
            self._check()

    @property
    def active(self) -> bool:
        """Whether a shadow option was given (else nothing is checked or opened up front)."""
        return bool(self.db or self.replay or self.openapi or any(self.specs.values()))

    @property
    def has_primary(self) -> bool:
        return bool(self.specs["primary"])

    def _check(self) -> None:
        """Every option checked before a test runs: a problem is one usage-error line."""
        from shadow.config.loader import parse_methods
        from shadow.errors import ShadowError
        from shadow.testing.backends import BackendError, resolve

        try:
            self.unsafe = parse_methods(self.pytest_config.getoption("shadow_unsafe") or "")
            self.config  # noqa: B018 - loads (and checks) the config file now
        except ShadowError as exc:
            raise pytest.UsageError(f"shadow: {exc}") from None
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise pytest.UsageError("shadow: --shadow-timeout must be a positive number of seconds")
        if self.examples < 1:
            raise pytest.UsageError("shadow: --shadow-examples must be at least 1")
        for leg, spec in self.specs.items():
            if spec and not (leg == "secondary" and spec == "primary"):
                try:
                    resolve(spec, f"--shadow-{leg}")
                except BackendError as exc:
                    raise pytest.UsageError(f"shadow: {exc}") from None
        listing = bool(self.pytest_config.option.collectonly)
        if (self.replay or self.openapi) and not self.specs["candidate"] and not listing:
            what = "--shadow-replay" if self.replay else "--shadow-openapi"
            raise pytest.UsageError(
                f"shadow: {what} needs a candidate: --shadow-candidate URL or module:app "
                "(or the ini option shadow_candidate)"
            )
        if self.openapi and not self.specs["primary"]:
            raise pytest.UsageError(
                "shadow: --shadow-openapi needs a primary too: --shadow-primary URL or module:app"
            )
        if self.db:
            self.store  # noqa: B018 - a store that cannot be written fails now

    @property
    def config_path(self) -> str | None:
        return _option(self.pytest_config, "shadow_config")

    @property
    def config(self) -> Config:
        if self._config is None:
            from shadow.config.loader import load_config

            self._config = load_config(self.config_path)
        return self._config

    @property
    def store(self) -> SessionStore | None:
        if self.db and self._store is None:
            from shadow.errors import ShadowError
            from shadow.pipeline.redact import redactor_for
            from shadow.testing.session_store import SessionStore

            labels = {leg: _label(spec) for leg, spec in self.specs.items()}
            hide = redactor_for(self.config.redact).text  # a URL's password, a token
            args = [hide(str(a)) for a in self.pytest_config.invocation_params.args]
            options = {"pytest_args": args}
            try:
                self._store = SessionStore(self.db, self.config, self.run_id, labels, options)
            except ShadowError as exc:
                raise pytest.UsageError(f"shadow: --shadow-db {self.db}: {exc}") from None
        return self._store

    def backend(self, leg: str, spec: Any) -> Backend:
        """The session's backend for `spec`: made once (a failure too: said once, then
        repeated without trying again), closed at the session's end or when more than
        MAX_BACKENDS are open (the least recently used first)."""
        from shadow.testing.backends import Backend, BackendError

        key = (leg, id(spec))
        if key in self._failed:
            raise BackendError(self._failed[key][1])
        found = self._backends.get(key)
        if found is not None:
            self._backends.move_to_end(key)
            return found[1]
        try:
            backend = Backend(spec, f"--shadow-{leg}", timeout=self.timeout,
                              tls=self.config.tls.get(leg))  # fmt: skip
        except BackendError as exc:
            self._failed[key] = (spec, str(exc))
            raise
        self._backends[key] = (spec, backend)
        while len(self._backends) > MAX_BACKENDS:
            _, (_, oldest) = self._backends.popitem(last=False)
            oldest.close()
        return backend

    def pair(
        self,
        config: Config | None = None,
        specs: dict[str, Any] | None = None,
        names: tuple[str, str] = ("primary", "candidate"),
        observers: tuple[Callable[[PairResult], None], ...] = (),
    ) -> ShadowPair:
        from shadow.testing.pair import ShadowPair

        specs = specs or self.specs
        primary_spec = specs.get("primary")
        candidate = self.backend("candidate", specs["candidate"])
        primary = self.backend("primary", primary_spec) if primary_spec else _NoPrimary()
        secondary_spec = specs.get("secondary")
        secondary = None
        if secondary_spec is not None and primary_spec:
            secondary = (
                self.backend("primary", primary_spec)
                if secondary_spec == "primary"
                else self.backend("secondary", secondary_spec)
            )
        return ShadowPair(
            primary,
            candidate,
            config or self.config,
            secondary=secondary,
            observers=(self.record, *observers),
            run_id=self.run_id,
            names=names,
        )

    def record(self, result: PairResult) -> None:
        self.compared += 1
        store = self.store
        if store is None:
            return
        from shadow.errors import ShadowError

        try:
            store.add(result)
        except ShadowError as exc:  # rows kept in the spill file; said once, at the end
            self.store_problem = self.store_problem or (
                f"shadow: some rows could not be stored ({exc}); see the spill file"
            )

    def cursor(self, path: str) -> Any:
        """The forward reader of the traffic file at `path` (one per file)."""
        from shadow.testing.replay_items import Cursor

        if path not in self._cursors:
            self._cursors[path] = Cursor(path, self.fmt, self.skip_bad)
        return self._cursors[path]

    def close(self) -> str | None:
        """Close everything; a line to show if the store could not take the last rows."""
        if self._closed:
            return None
        self._closed = True
        for cursor in self._cursors.values():
            cursor.close()
        for _, backend in self._backends.values():
            backend.close()
        self._backends.clear()
        if self._store is not None:
            from shadow.errors import ShadowError

            try:
                self._store.close()
            except ShadowError as exc:
                return (
                    f"shadow: the last rows could not be stored ({exc}); they are in the spill file"
                )
        return None


class _NoPrimary:
    """The primary's place when the recorded answer stands for it (replay without one)."""

    label = "recorded"

    def send(self, request: Any) -> Any:
        raise AssertionError("no primary backend: the recorded answer is used")


def _label(spec: Any) -> str | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return spec
    return f"app {type(spec).__module__}.{type(spec).__qualname__}"


STATE = pytest.StashKey[ShadowState]()
RESULTS = pytest.StashKey[list["PairResult"]]()


def _state(config: pytest.Config) -> ShadowState:
    return config.stash[STATE]


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="session")
def shadow_primary(pytestconfig: pytest.Config) -> Any:
    """The primary (legacy) backend: --shadow-primary, the ini, or your override."""
    return _state(pytestconfig).specs["primary"]


@pytest.fixture(scope="session")
def shadow_candidate(pytestconfig: pytest.Config) -> Any:
    """The candidate (new) backend: --shadow-candidate, the ini, or your override."""
    return _state(pytestconfig).specs["candidate"]


@pytest.fixture(scope="session")
def shadow_secondary(pytestconfig: pytest.Config) -> Any:
    """A second legacy instance (or 'primary': ask it twice) whose differences are noise."""
    return _state(pytestconfig).specs["secondary"]


def _failed(message: str) -> BaseException:
    """The test's failure as one line: raised `from None`, so no "During handling of the
    above exception" chain is shown above it."""
    return pytest.fail.Exception(message, pytrace=False)


def _marked_config(request: pytest.FixtureRequest) -> Config:
    from comparators import RuleError
    from shadow.testing.pair import with_marker

    base = _state(request.config).config
    marker = request.node.get_closest_marker("shadow")
    if marker is None:
        return base
    if marker.args:
        pytest.fail("@pytest.mark.shadow takes keywords only (route=..., ignore_paths=[...])",
                    pytrace=False)  # fmt: skip
    rules = dict(marker.kwargs)
    route = rules.pop("route", None)
    if route is not None and not isinstance(route, str):
        pytest.fail("@pytest.mark.shadow: route must be a string like '/api/items/{id}'",
                    pytrace=False)  # fmt: skip
    try:
        return with_marker(base, route, rules)
    except (RuleError, ValueError) as exc:
        raise _failed(f"@pytest.mark.shadow: {exc}") from None


def _recorder(item: pytest.Item) -> Callable[[PairResult], None]:
    results = item.stash.setdefault(RESULTS, [])
    return results.append


@pytest.fixture
def shadow_pair(
    request: pytest.FixtureRequest,
    shadow_primary: Any,
    shadow_candidate: Any,
    shadow_secondary: Any,
) -> ShadowPair:
    """Sends each request to both backends: `assert shadow_pair.get("/x").matches()`."""
    state = _state(request.config)
    specs = {"primary": shadow_primary, "candidate": shadow_candidate,
             "secondary": shadow_secondary}  # fmt: skip
    for leg in ("primary", "candidate"):
        if specs[leg] is None:
            pytest.fail(f"shadow_pair: no {leg} backend (--shadow-{leg}, the ini option "
                        f"shadow_{leg}, or a shadow_{leg} fixture)", pytrace=False)  # fmt: skip
    return _guarded(lambda: state.pair(_marked_config(request), specs,
                                        observers=(_recorder(request.node),)))  # fmt: skip


def _guarded(make: Callable[[], Any]) -> Any:
    from shadow.testing.backends import BackendError

    try:
        return make()
    except BackendError as exc:
        raise _failed(f"shadow: {exc}") from None


@pytest.fixture
def shadow_flag_pair(
    request: pytest.FixtureRequest, shadow_candidate: Any
) -> Iterator[Callable[..., ShadowPair]]:
    """`shadow_flag_pair(route="/api/x/{id}")` or `(flag="new_x")`: a pair whose two sides
    are one backend (default: the candidate; `backend=` another URL or app) with the route
    set to legacy, then to candidate (or the flag false, then true), in the flag store."""
    from shadow.testing.flags import FlagSide, Switch

    state = _state(request.config)
    switches: list[Switch] = []

    def make(
        *,
        route: str | None = None,
        flag: str | None = None,
        backend: Any = None,
        settle: float | None = None,
    ) -> ShadowPair:
        from shadow.errors import ShadowError

        spec = backend if backend is not None else shadow_candidate
        if spec is None:
            pytest.fail("shadow_flag_pair: no backend (backend=..., or --shadow-candidate)",
                        pytrace=False)  # fmt: skip
        from shadow.config.control import flags_spec

        where = flags_spec(_option(request.config, "shadow_flags") or "", state.config.control,
                           state.config_path)  # fmt: skip
        try:
            switch = Switch.open(where, state.config, route, flag, settle)
        except (ShadowError, ValueError) as exc:
            raise _failed(f"shadow_flag_pair: {exc}") from None
        switches.append(switch)
        target = _guarded(lambda: state.backend("candidate", spec))
        pair = state.pair(_marked_config(request), {"candidate": spec},
                          observers=(_recorder(request.node),))  # fmt: skip
        pair.primary = FlagSide(target, switch, candidate=False)
        pair.candidate = FlagSide(target, switch, candidate=True)
        pair.secondary = None
        pair.names = ("legacy", "candidate")
        return pair

    yield make
    problems = []
    for switch in reversed(switches):  # the last change first: the first state ends in place
        try:
            switch.restore()
        except Exception as exc:  # one store failing must not keep the others as they are
            problems.append(str(exc))
    if problems:
        raise _failed(f"shadow_flag_pair: could not restore the flag store: {problems[0]}")


# -- collection -------------------------------------------------------------


def pytest_ignore_collect(collection_path: Any, config: pytest.Config) -> bool | None:
    """With --shadow-replay or --shadow-openapi and no test paths given, run only those."""
    state = config.stash.get(STATE, None)
    if state is None or not (state.replay or state.openapi):
        return None
    return True if config.args_source != pytest.Config.ArgsSource.ARGS else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not (state.replay or state.openapi):
        return
    from shadow.config.loader import parse_methods
    from shadow.errors import ShadowError
    from shadow.testing.replay_items import Filters, replay_items

    try:
        filters = Filters(
            frozenset(parse_methods(config.getoption("shadow_method")) - {"*"}),
            tuple(config.getoption("shadow_route")),
        )
        added: list[tuple[str, list[pytest.Item]]] = []
        for path in state.replay:
            added.append((path, replay_items(session, path, state, filters)))
        if state.openapi:
            from shadow.testing.openapi_items import openapi_items

            added.append((state.openapi, openapi_items(session, state, filters)))
    except ShadowError as exc:
        raise pytest.UsageError(f"shadow: {exc}") from None
    for _, found in added:
        items.extend(found)
        # Reported as a collector's result, so "collected N items" and --collect-only
        # count them like any others.
        nodeid = found[0].parent.nodeid if found and found[0].parent else ""
        report = pytest.CollectReport(nodeid, "passed", None, list(found))
        config.hook.pytest_collectreport(report=report)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A test that needs a backend nobody gave is a usage error, said once."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return  # listing tests (an IDE's discovery) needs no backend
    for item in session.items:
        names = getattr(item, "fixturenames", ())
        if "shadow_pair" not in names or any(item.iter_markers("skip")):
            continue
        if any(m.args and all(a is True or isinstance(a, str) for a in m.args)
               for m in item.iter_markers("skipif")):  # fmt: skip
            # Skipped for sure (`skipif(True)`), or maybe (a condition string, evaluated
            # only when it runs): if it runs after all, the fixture fails it in one line.
            continue
        info = getattr(item, "_fixtureinfo", None)
        for leg in ("primary", "candidate"):
            defs = info.name2fixturedefs.get(f"shadow_{leg}") if info is not None else None
            ours = not defs or getattr(defs[-1].func, "__module__", "") == __name__
            if ours and not state.specs[leg]:
                raise pytest.UsageError(
                    f"shadow: {item.nodeid} uses shadow_pair but no {leg} backend is given "
                    f"(--shadow-{leg} URL or module:app, the ini option shadow_{leg}, or a "
                    f"shadow_{leg} fixture)"
                )


# -- reporting --------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        bad = [r for r in item.stash.get(RESULTS, []) if r.verdict != "match"]
        if bad:
            from shadow.testing.explain import explain

            text = "\n\n".join("\n".join(explain(r).lines) for r in bad)
            report.sections.append((SECTION, text))
    return report


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> Any:
    """`assert result.matches() == True` and the like: the differences, not two reprs."""
    from shadow.testing.pair import PairResult, Parity

    for side in (left, right):
        if isinstance(side, Parity):
            return [f"{op} on a shadow parity", *side.explained.lines]
        if isinstance(side, PairResult):
            return [f"{op} on a shadow result", *side.matches().explained.lines]
    return None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    problem = state.close() or state.store_problem
    if problem:
        terminalreporter.write_line(problem, red=True)
    if state.db and state.compared:
        terminalreporter.write_line(
            f"shadow: {state.compared} comparisons stored in run {state.run_id} of {state.db}; "
            f"next: shadow report --db {state.db} --run {state.run_id}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close()
