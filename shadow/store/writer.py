"""DuckDB storage: opening files safely and the single batching writer.

Only one process may hold a DuckDB file open for writing, and while it does no
other process can open it at all. Opening and closing the file for every batch
costs tens of milliseconds, so the writer keeps it open, but a reader
(`shadow report`) first leaves a request file beside the database
(`<db>.read-request`); the writer sees it at its next flush (within a second),
closes the file and from then on opens it only while it writes a batch, until
the reader is done and removes the request.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from shadow.errors import ConfigError, StoreError
from shadow.store import outcomes
from shadow.store.rows import (
    AcceptedRow,
    ConversationRow,
    DataColumnRow,
    DataDifferenceRow,
    DataTableRow,
    DifferenceRow,
    EventRow,
    ExchangeRow,
    NoiseRow,
    arrow_schema,
    columns,
)
from shadow.store.schema import SCHEMA_VERSION, migrate, schema_version

if TYPE_CHECKING:
    from shadow.config.loader import Accepted

_LOCK_MARKERS = ("lock", "Conflicting", "different configuration")


def is_lock_error(exc: Exception) -> bool:
    return any(m in str(exc) for m in _LOCK_MARKERS)


def describe_error(exc: Exception, path: str) -> str:
    text = str(exc).splitlines()[0]
    if "not a valid DuckDB database file" in text:
        return f"{path} is not a DuckDB database"
    if is_lock_error(exc):
        return f"{path} is locked by another process (is a writer holding it?)"
    return f"cannot open {path}: {text}"


def connect(path: str, *, read_only: bool, wait: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, retrying while another process holds its lock."""
    if read_only and not os.path.exists(path):
        raise StoreError(f"database {path} does not exist")
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise StoreError(describe_error(exc, path)) from None
        except duckdb.Error as exc:
            raise StoreError(describe_error(exc, path)) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


READ_REQUEST_SUFFIX = ".read-request"
_READ_REQUEST_FRESH = 900.0  # seconds; an older request was left by a reader that died


def _read_requests(path: str) -> list[str]:
    """Request files of readers of `path`: one per reader, `<db>.read-request[.<id>]`."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + READ_REQUEST_SUFFIX
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if n == prefix or n.startswith(prefix + ".")]


def read_requested(path: str) -> bool:
    """Whether a reader is waiting for (or reading) the database at `path`."""
    now = time.time()
    for request in _read_requests(path):
        try:
            if now - os.stat(request).st_mtime < _READ_REQUEST_FRESH:
                return True
        except OSError:
            continue  # its reader just finished
    return False


@contextmanager
def asking_writer(path: str) -> Iterator[None]:
    """Leave a request file of our own beside `path` meanwhile: a live writer lets go.

    Each reader has its own file, so readers at the same time never remove one
    another's request.
    """
    request = f"{path}{READ_REQUEST_SUFFIX}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    made = False
    if os.path.exists(path):
        try:
            with open(request, "a"):
                pass
            made = True
        except OSError:
            pass  # a read-only directory: no writer can be running there either
    try:
        yield
    finally:
        if made:
            with suppress(OSError):
                os.remove(request)


@contextmanager
def reading(
    path: str, wait: float = 30.0, accepted: Sequence[Accepted] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, asking a live writer to let go of the file meanwhile.

    The outcome definition is installed on it (see `open_for_reading`). `path` may
    also name several stores, a directory or a glob (`shadow.store.shards`): they
    are read merged into one.
    """
    from shadow.store import shards

    if shards.is_many(path):
        files = shards.expand(path)
        if len(files) > 1:
            with shards.merged(files, wait=wait, accepted=accepted) as con:
                yield con
            return
        path = files[0]  # one file: read in place, no copy
    with asking_writer(path):
        con = open_for_reading(path, wait=wait, accepted=accepted)
        try:
            yield con
        finally:
            con.close()


def open_for_reading(
    path: str, wait: float = 30.0, accepted: Sequence[Accepted] | None = None
) -> duckdb.DuckDBPyConnection:
    """Read-only connection to a shadow database, with the outcome macros installed.

    `accepted`: the [[accepted]] entries of the reader's config, applied to every
    run (None: each run's own; see `shadow.store.outcomes`). StoreError if the
    file is not a shadow database; one of an older schema version is refused with
    the command that migrates it (readers never write). Prefer `reading()`, which
    also asks a running writer to release the file.
    """
    con = connect(path, read_only=True, wait=wait)
    problem = None
    try:
        version = schema_version(con)
        if version == 0:
            problem = f"{path} is a DuckDB file but holds no shadow data"
        elif version < SCHEMA_VERSION:
            problem = (
                f"{path} has schema version {version} (this shadow reads {SCHEMA_VERSION}); "
                f"run `shadow migrate --db {path}` first"
            )
        elif version > SCHEMA_VERSION:
            problem = (
                f"{path} has schema version {version}, newer than this shadow "
                f"({SCHEMA_VERSION}); upgrade shadow to read it"
            )
        else:
            outcomes.install(con, accepted)
    except duckdb.Error as exc:
        problem = describe_error(exc, path)
    if problem is not None:
        con.close()
        raise StoreError(problem)
    return con


def ensure_writable(path: str) -> None:
    """Create or migrate the database at `path` (fails fast on a bad file).

    It opens the file for writing, so a second writer of the same file fails here
    (locked) instead of taking turns with the first.
    """
    migrate_file(path)


def migrate_file(path: str, check_first: bool = False) -> tuple[int, int]:
    """Create or migrate the database at `path`; return its versions before and after.

    `check_first` (for `shadow migrate`): read the version as a reader would first,
    and do nothing more when it is current (no waiting for a live writer's lock).
    """
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StoreError(f"directory {parent} does not exist")
    if check_first and os.path.exists(path):
        current = _version_when_read(path)
        if current == SCHEMA_VERSION:
            return current, current
    con = connect(path, read_only=False)
    try:
        before = schema_version(con)
        if before == 0 and _foreign_tables(con):
            raise StoreError(f"{path} is a DuckDB database of something else (not a shadow store)")
        return before, migrate(con)
    except (duckdb.Error, RuntimeError) as exc:
        raise StoreError(describe_error(exc, path)) from None
    finally:
        con.close()


def _version_when_read(path: str) -> int | None:
    """The schema version, read as a reader would (a live writer lets go); None: unknown."""
    with asking_writer(path):
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.Error as exc:
            # Held by this very process ("different configuration"): no point in waiting.
            if "different configuration" in str(exc) or not is_lock_error(exc):
                return None
            try:
                con = connect(path, read_only=True, wait=5.0)
            except StoreError:
                return None  # not readable now: the write that follows says why
        try:
            return schema_version(con)
        except duckdb.Error:
            return None
        finally:
            con.close()


def _foreign_tables(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE NOT temporary AND table_name <> 'shadow_meta'"
    ).fetchone()
    return bool(found and found[0])


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


@dataclass
class Run:
    """One proxy session or replay, as a row of `runs`."""

    run_id: str
    source: str
    started_at: float
    primary_url: str | None = None
    candidate_url: str | None = None
    secondary_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None
    copies_dropped: int = 0
    exchanges: int = 0
    rows_spilled: int = 0  # exchanges saved to the spill file, not to the store
    # Accounting (see sql/004_accounting.sql): rows + spilled + shed + lost = requests.
    requests: int = 0
    requests_shed: int = 0
    requests_lost: int = 0
    worker_restarts: int = 0


INSERT_RUN = """
INSERT INTO runs (source, started_at, ended_at, primary_url, candidate_url, secondary_url,
    options, copies_dropped, exchanges, rows_spilled, requests, requests_shed, requests_lost,
    worker_restarts, run_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The run's row changes at every flush: an UPDATE by its key costs DuckDB a third of an
# INSERT OR REPLACE (measured: 2.1 vs 6.4 ms of CPU), which deletes and inserts the row.
UPDATE_RUN = """
UPDATE runs SET source = ?, started_at = ?, ended_at = ?, primary_url = ?, candidate_url = ?,
    secondary_url = ?, options = ?, copies_dropped = ?, exchanges = ?, rows_spilled = ?,
    requests = ?, requests_shed = ?, requests_lost = ?, worker_restarts = ?
WHERE run_id = ?
"""
# The tables the writer fills from Arrow batches, each with its declared row type.
_TABLES: tuple[tuple[str, type[tuple[Any, ...]]], ...] = (
    ("exchanges", ExchangeRow),
    ("differences", DifferenceRow),
    ("noise_differences", NoiseRow),
    ("run_accepted", AcceptedRow),
    ("events", EventRow),
    ("conversations", ConversationRow),
    ("data_tables", DataTableRow),
    ("data_differences", DataDifferenceRow),
    ("data_columns", DataColumnRow),
)
WRITER_MEMORY = "256MB"  # DuckDB's memory limit for the writer's connection
WRITER_THREADS = 1  # DuckDB's threads for the writer's connection
_ARROW: dict[str, Any] = {}  # table -> Arrow schema, made by the first write
_INSERT = {
    name: f"INSERT INTO {name} ({', '.join(columns(row))}) SELECT * FROM _batch"
    for name, row in _TABLES
}


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Any]) -> None:
    """Insert rows of one of the writer's tables (their declared row type) through Arrow.

    The writer's batches and the rollback controller's in-memory window use it.
    """
    if not rows:
        return
    import pyarrow as pa  # only writers need it: readers start faster without it

    schema = _ARROW.get(table)
    if schema is None:
        schema = _ARROW[table] = arrow_schema(dict(_TABLES)[table])
    cols = list(zip(*rows, strict=True))
    data = pa.table({field.name: list(cols[i]) for i, field in enumerate(schema)}, schema=schema)
    con.register("_batch", data)
    try:
        con.execute(_INSERT[table])
    finally:
        con.unregister("_batch")


class StoreWriter:
    """Buffers rows and writes them in batches; the only writer of a database.

    Not thread-safe: one owner (the worker process) calls it.
    """

    def __init__(self, path: str, *, lock_wait: float = 60.0) -> None:
        self.path = path
        self.lock_wait = lock_wait
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name, _ in _TABLES}
        self._runs: dict[str, Run] = {}
        self._dirty_runs: set[str] = set()
        self.written = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        ensure_writable(path)

    @property
    def pending(self) -> int:
        return len(self._rows["exchanges"])

    def run_changed(self, run: Run) -> None:
        """Record (or update) a run row at the next flush."""
        self._runs[run.run_id] = run
        self._dirty_runs.add(run.run_id)

    def add(
        self,
        exchange_row: ExchangeRow,
        difference_rows: Sequence[DifferenceRow] = (),
        noise_rows: Sequence[NoiseRow] = (),
        conversation_rows: Sequence[ConversationRow] = (),
    ) -> None:
        self._rows["exchanges"].append(exchange_row)
        self._rows["differences"].extend(difference_rows)
        self._rows["noise_differences"].extend(noise_rows)
        self._rows["conversations"].extend(conversation_rows)

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Flag changes, rollbacks, notifications (shadow.control), written with the rows."""
        self._rows["events"].extend(rows)

    def add_data(
        self,
        table: DataTableRow,
        differences: Sequence[DataDifferenceRow],
        columns: Sequence[DataColumnRow],
    ) -> None:
        """One table diff's facts (`shadow data diff`), written with its run."""
        self._rows["data_tables"].append(table)
        self._rows["data_differences"].extend(differences)
        self._rows["data_columns"].extend(columns)

    def add_accepted(self, rows: Sequence[AcceptedRow]) -> None:
        """The [[accepted]] entries a run started with (written once, with the run)."""
        self._rows["run_accepted"].extend(rows)

    def detach(self) -> _Batch:
        """Take the buffered rows out, so they can be written off the owner's thread."""
        batch = _Batch(self._rows, [replace(self._runs[r]) for r in sorted(self._dirty_runs)])
        self._rows = {name: [] for name, _ in _TABLES}
        self._dirty_runs = set()
        return batch

    def restore(self, batch: _Batch) -> None:
        """Put back a batch whose write failed, ahead of newer rows."""
        for name, rows in batch.rows.items():
            self._rows[name][:0] = rows
        self._dirty_runs.update(r.run_id for r in batch.runs)

    def flush(self) -> int:
        """Write everything buffered and let go of the file; return exchanges written."""
        batch = self.detach()
        try:
            return self.write(batch)
        except StoreError:
            self.restore(batch)
            raise
        finally:
            self.release()

    def release(self) -> None:
        """Close the file if it is held (at the end, or when a reader asks for it)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def spill(self, batch: _Batch, path: str) -> None:
        """Append a batch that could not be written to a JSON Lines file, one row a line."""
        with open(path, "a", encoding="utf-8") as fh:
            for table, rows in batch.rows.items():
                names = columns(dict(_TABLES)[table])
                for row in rows:
                    record = dict(zip(names, row, strict=True))
                    fh.write(json.dumps({"table": table, **record}, default=str) + "\n")

    def write(self, batch: _Batch) -> int:
        """Write one detached batch in a single transaction (safe in another thread)."""
        share = read_requested(self.path)
        if share:
            self.release()
        if not batch.exchanges and not batch.runs and not any(batch.rows.values()):
            return 0
        if self._con is None:
            self._con = connect(self.path, read_only=False, wait=self.lock_wait)
            # Batches of a few MB need little: DuckDB's default (80 % of RAM) would let
            # a long run's worker grow with the file's cache.
            self._con.execute(f"SET memory_limit = '{WRITER_MEMORY}'")
            # One thread: a batch of rows a second gains nothing from a second one, which
            # only spins (measured: 22 us of CPU a row with 2 threads, 12.6 with 1) and takes
            # the core the live proxy beside it needs.
            self._con.execute(f"SET threads = {WRITER_THREADS}")
        con = self._con
        try:
            con.execute("BEGIN TRANSACTION")
            for r in batch.runs:
                values = [
                    r.source, _ts(r.started_at), _ts(r.ended_at) if r.ended_at else None,
                    r.primary_url, r.candidate_url, r.secondary_url,
                    json.dumps(r.options, default=str), r.copies_dropped, r.exchanges,
                    r.rows_spilled, r.requests, r.requests_shed, r.requests_lost,
                    r.worker_restarts, r.run_id,
                ]  # fmt: skip
                updated = con.execute(UPDATE_RUN, values).fetchone()
                if not updated or not updated[0]:
                    con.execute(INSERT_RUN, values)
            for name, rows in batch.rows.items():
                insert_rows(con, name, rows)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            self.release()
            raise StoreError(describe_error(exc, self.path)) from None
        finally:
            if share:
                self.release()
        self.written += len(batch.exchanges)
        return len(batch.exchanges)


@dataclass
class _Batch:
    rows: dict[str, list[tuple[Any, ...]]]
    runs: list[Run]

    @property
    def exchanges(self) -> list[tuple[Any, ...]]:
        return self.rows.get("exchanges", [])


def spill_path(db: str, run_id: str) -> str:
    """Where rows the store would not take are saved for `run_id` (JSON Lines)."""
    return f"{db}.unflushed-{run_id}.jsonl"


_SPILL_LINE_CAP = 1 << 30  # bytes of a spill file counted; past it the count is a floor


def spilled_exchanges(path: str) -> int:
    """Exchange rows saved in the spill file `path` (0 when there is none)."""
    n = 0
    read = 0
    with suppress(OSError), open(path, "rb") as fh:  # unreadable: counted as none
        for line in fh:
            read += len(line)
            n += line.startswith(b'{"table": "exchanges"')
            if read > _SPILL_LINE_CAP:
                break
    return n


_RUN_COLUMNS = (
    "started_at, exchanges, rows_spilled, copies_dropped, requests, requests_shed, "
    "requests_lost, worker_restarts"
)


def load_run(con: duckdb.DuckDBPyConnection, run: Run) -> None:
    """Continue `run` from its stored row (a restarted worker): counts and start time."""
    row = con.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", [run.run_id]).fetchone()
    if row is None:
        return
    stored = con.execute("SELECT count(*) FROM exchanges WHERE run_id = ?", [run.run_id]).fetchone()
    run.started_at = row[0].replace(tzinfo=UTC).timestamp() if row[0] else run.started_at
    run.exchanges = int(stored[0]) if stored else 0
    run.rows_spilled = int(row[2] or 0)
    run.copies_dropped = int(row[3] or 0)


@dataclass(frozen=True)
class Accounting:
    """What became of a run's requests, as finally recorded in its row."""

    requests: int
    stored: int
    spilled: int
    shed: int
    lost: int


def finish_run(
    path: str,
    run_id: str,
    *,
    requests: int,
    shed: int,
    restarts: int,
    source: str = "proxy",
    lock_wait: float = 60.0,
) -> Accounting:
    """Settle a live run's accounting once its worker is gone, from what the file holds.

    The proxy counts requests and shed copies itself; rows and spilled rows are
    counted where they ended up, so a worker that died mid-batch cannot make
    the numbers lie. Sets `ended_at` if the worker could not.
    """
    spilled = spilled_exchanges(spill_path(path, run_id))
    con = connect(path, read_only=False, wait=lock_wait)
    try:
        found = con.execute("SELECT count(*) FROM exchanges WHERE run_id = ?", [run_id]).fetchone()
        stored = int(found[0]) if found else 0
        known = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if not (known and known[0]):  # the worker died before it wrote the run's row
            con.execute(
                "INSERT INTO runs (run_id, source, started_at) VALUES (?, ?, ?)",
                [run_id, source, _ts(time.time())],
            )
        lost = max(0, requests - stored - spilled - shed)
        con.execute(
            "UPDATE runs SET exchanges = ?, rows_spilled = ?, requests = ?, requests_shed = ?, "
            "requests_lost = ?, worker_restarts = ?, copies_dropped = greatest(copies_dropped, ?), "
            "ended_at = coalesce(ended_at, ?) WHERE run_id = ?",
            [stored, spilled, requests, shed, lost, restarts, shed, _ts(time.time()), run_id],
        )
    except duckdb.Error as exc:
        raise StoreError(describe_error(exc, path)) from None
    finally:
        con.close()
    return Accounting(requests, stored, spilled, shed, lost)


def ensure_new_run(path: str, run_id: str, what: str) -> None:
    """A named run must be new: writing into an existing run would rewrite its row."""
    if not run_id or not os.path.exists(path):
        return
    with reading(path) as con:
        found = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if found and found[0]:
        raise ConfigError(f"{what} {run_id}: a run of that name is already in {path}")


__all__ = [
    "Accounting",
    "Run",
    "StoreWriter",
    "connect",
    "ensure_new_run",
    "ensure_writable",
    "finish_run",
    "insert_rows",
    "load_run",
    "migrate",
    "migrate_file",
    "open_for_reading",
    "read_requested",
    "reading",
    "spill_path",
    "spilled_exchanges",
]
