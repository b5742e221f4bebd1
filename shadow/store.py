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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from shadow.errors import ConfigError, StoreError
from shadow.schema import (
    DIFFERENCE_COLUMNS,
    EXCHANGE_COLUMNS,
    NOISE_COLUMNS,
    migrate,
    schema_version,
)

_LOCK_MARKERS = ("lock", "Conflicting", "different configuration")


def _is_lock_error(exc: Exception) -> bool:
    return any(m in str(exc) for m in _LOCK_MARKERS)


def _describe(exc: Exception, path: str) -> str:
    text = str(exc).splitlines()[0]
    if "not a valid DuckDB database file" in text:
        return f"{path} is not a DuckDB database"
    if _is_lock_error(exc):
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
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                raise StoreError(_describe(exc, path)) from None
        except duckdb.Error as exc:
            raise StoreError(_describe(exc, path)) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


READ_REQUEST_SUFFIX = ".read-request"
_READ_REQUEST_FRESH = 900.0  # seconds; an older request was left by a reader that died


def read_requested(path: str) -> bool:
    """Whether a reader is waiting for (or reading) the database at `path`."""
    try:
        mtime = os.stat(path + READ_REQUEST_SUFFIX).st_mtime
    except OSError:
        return False
    return time.time() - mtime < _READ_REQUEST_FRESH


@contextmanager
def reading(path: str, wait: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, asking a live writer to let go of the file meanwhile."""
    request = path + READ_REQUEST_SUFFIX
    made = False
    if os.path.exists(path):
        try:
            with open(request, "a"):
                os.utime(request)
            made = True
        except OSError:
            pass  # a read-only directory: no writer can be running there either
    try:
        con = open_for_reading(path, wait=wait)
        try:
            yield con
        finally:
            con.close()
    finally:
        if made:
            with suppress(OSError):
                os.remove(request)


def open_for_reading(path: str, wait: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Read-only connection to a shadow database; StoreError if it is not one.

    Prefer `reading()`, which also asks a running writer to release the file.
    """
    con = connect(path, read_only=True, wait=wait)
    try:
        version = schema_version(con)
    except duckdb.Error as exc:
        con.close()
        raise StoreError(_describe(exc, path)) from None
    if version == 0:
        con.close()
        raise StoreError(f"{path} is a DuckDB file but holds no shadow data")
    return con


def ensure_writable(path: str) -> None:
    """Create or migrate the database at `path` (fails fast on a bad file)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StoreError(f"directory {parent} does not exist")
    con = connect(path, read_only=False)
    try:
        migrate(con)
    except (duckdb.Error, RuntimeError) as exc:
        raise StoreError(_describe(exc, path)) from None
    finally:
        con.close()


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


_EXCHANGE_SCHEMA = pa.schema(
    [
        (c, pa.timestamp("us"))
        if c == "ts"
        else (c, pa.int32())
        if c in ("primary_status", "candidate_status", "secondary_status", "diff_count")
        else (c, pa.float64())
        if c.endswith("_ms")
        else (c, pa.bool_())
        if c.endswith("_truncated")
        else (c, pa.string())
        for c in EXCHANGE_COLUMNS
    ]
)
_DIFF_SCHEMA = pa.schema([(c, pa.string()) for c in DIFFERENCE_COLUMNS])
_NOISE_SCHEMA = pa.schema([(c, pa.string()) for c in NOISE_COLUMNS])

UPSERT_RUN = """
INSERT OR REPLACE INTO runs (run_id, source, started_at, ended_at, primary_url, candidate_url,
    secondary_url, options, copies_dropped, exchanges)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_EXCHANGES = f"INSERT INTO exchanges ({', '.join(EXCHANGE_COLUMNS)}) SELECT * FROM _batch"
INSERT_DIFFERENCES = (
    f"INSERT INTO differences ({', '.join(DIFFERENCE_COLUMNS)}) SELECT * FROM _batch"
)
INSERT_NOISE = f"INSERT INTO noise_differences ({', '.join(NOISE_COLUMNS)}) SELECT * FROM _batch"


class StoreWriter:
    """Buffers rows and writes them in batches; the only writer of a database.

    Not thread-safe: one owner (the worker process) calls it.
    """

    def __init__(self, path: str, *, lock_wait: float = 60.0) -> None:
        self.path = path
        self.lock_wait = lock_wait
        self._exchanges: list[Sequence[Any]] = []
        self._differences: list[Sequence[Any]] = []
        self._noise: list[Sequence[Any]] = []
        self._runs: dict[str, Run] = {}
        self._dirty_runs: set[str] = set()
        self.written = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        ensure_writable(path)

    @property
    def pending(self) -> int:
        return len(self._exchanges)

    def run_changed(self, run: Run) -> None:
        """Record (or update) a run row at the next flush."""
        self._runs[run.run_id] = run
        self._dirty_runs.add(run.run_id)

    def add(
        self,
        exchange_row: Sequence[Any],
        difference_rows: Sequence[Sequence[Any]],
        noise_rows: Sequence[Sequence[Any]] = (),
    ) -> None:
        self._exchanges.append(exchange_row)
        self._differences.extend(difference_rows)
        self._noise.extend(noise_rows)

    def detach(self) -> _Batch:
        """Take the buffered rows out, so they can be written off the owner's thread."""
        batch = _Batch(
            self._exchanges,
            self._differences,
            [replace(self._runs[r]) for r in sorted(self._dirty_runs)],
            self._noise,
        )
        self._exchanges, self._differences, self._noise, self._dirty_runs = [], [], [], set()
        return batch

    def restore(self, batch: _Batch) -> None:
        """Put back a batch whose write failed, ahead of newer rows."""
        self._exchanges[:0] = batch.exchanges
        self._differences[:0] = batch.differences
        self._noise[:0] = batch.noise
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
            for table, cols, rows in (
                ("exchanges", EXCHANGE_COLUMNS, batch.exchanges),
                ("differences", DIFFERENCE_COLUMNS, batch.differences),
                ("noise_differences", NOISE_COLUMNS, batch.noise),
            ):
                for row in rows:
                    record = dict(zip(cols, row, strict=True))
                    fh.write(json.dumps({"table": table, **record}, default=str) + "\n")

    def write(self, batch: _Batch) -> int:
        """Write one detached batch in a single transaction (safe in another thread)."""
        share = read_requested(self.path)
        if share:
            self.release()
        if not batch.exchanges and not batch.runs:
            return 0
        if self._con is None:
            self._con = connect(self.path, read_only=False, wait=self.lock_wait)
        con = self._con
        try:
            con.execute("BEGIN TRANSACTION")
            for r in batch.runs:
                con.execute(
                    UPSERT_RUN,
                    [
                        r.run_id, r.source, _ts(r.started_at),
                        _ts(r.ended_at) if r.ended_at else None, r.primary_url,
                        r.candidate_url, r.secondary_url, json.dumps(r.options, default=str),
                        r.copies_dropped, r.exchanges,
                    ],
                )  # fmt: skip
            if batch.exchanges:
                cols = list(zip(*batch.exchanges, strict=True))
                arrays = {
                    name: [_ts(v) for v in cols[i]] if name == "ts" else list(cols[i])
                    for i, name in enumerate(EXCHANGE_COLUMNS)
                }
                con.register("_batch", pa.table(arrays, schema=_EXCHANGE_SCHEMA))
                con.execute(INSERT_EXCHANGES)
                con.unregister("_batch")
            if batch.differences:
                dcols = list(zip(*batch.differences, strict=True))
                darrays = {name: list(dcols[i]) for i, name in enumerate(DIFFERENCE_COLUMNS)}
                con.register("_batch", pa.table(darrays, schema=_DIFF_SCHEMA))
                con.execute(INSERT_DIFFERENCES)
                con.unregister("_batch")
            if batch.noise:
                ncols = list(zip(*batch.noise, strict=True))
                narrays = {name: list(ncols[i]) for i, name in enumerate(NOISE_COLUMNS)}
                con.register("_batch", pa.table(narrays, schema=_NOISE_SCHEMA))
                con.execute(INSERT_NOISE)
                con.unregister("_batch")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            self.release()
            raise StoreError(_describe(exc, self.path)) from None
        finally:
            if share:
                self.release()
        self.written += len(batch.exchanges)
        return len(batch.exchanges)


@dataclass
class _Batch:
    exchanges: list[Sequence[Any]]
    differences: list[Sequence[Any]]
    runs: list[Run]
    noise: list[Sequence[Any]] = field(default_factory=list)


def ensure_new_run(path: str, run_id: str, what: str) -> None:
    """A named run must be new: writing into an existing run would rewrite its row."""
    if not run_id or not os.path.exists(path):
        return
    with reading(path) as con:
        found = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if found and found[0]:
        raise ConfigError(f"{what} {run_id}: a run of that name is already in {path}")


__all__ = [
    "Run",
    "StoreWriter",
    "connect",
    "ensure_new_run",
    "ensure_writable",
    "migrate",
    "open_for_reading",
    "read_requested",
    "reading",
]
