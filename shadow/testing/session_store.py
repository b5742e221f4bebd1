"""`--shadow-db`: every comparison of a test session stored as one run, like a replay.

The rows are the pipeline's own (`evaluate`), written by the store's one writer
in batches; the run's source is `pytest:<invocation dir>`, its accepted entries
those of the config, so `shadow report` and `shadow check` read a test session
as they read a replay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from shadow.config.loader import Config
from shadow.errors import StoreError
from shadow.pipeline.redact import redactor_for
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter, spill_path
from shadow.testing.pair import PairResult

FLUSH_ROWS = 500  # exchanges buffered before a write


def _hidden(url: str | None, hide: Callable[[str], str]) -> str | None:
    """A backend's URL with a password in it hidden (an app's name as it is)."""
    return hide(url) if url else None


class SessionStore:
    """The run of one pytest session in a DuckDB store."""

    def __init__(
        self,
        db: str,
        config: Config,
        run_id: str,
        backends: dict[str, str | None],
        options: Mapping[str, object],
    ) -> None:
        hide = redactor_for(config.redact).text
        self.db = db
        self.writer = StoreWriter(db)  # StoreError: not a store, not writable
        self.run = Run(
            run_id=run_id,
            source=f"pytest:{os.getcwd()}",
            started_at=time.time(),
            primary_url=_hidden(backends.get("primary"), hide),
            candidate_url=_hidden(backends.get("candidate"), hide),
            secondary_url=_hidden(backends.get("secondary"), hide),
            options={**options, "config": config.source},
        )
        self.writer.add_accepted(
            [
                AcceptedRow(run_id, i + 1, a.endpoint, a.path, a.kind, a.reason)
                for i, a in enumerate(config.accepted)
            ]
        )
        # The file was checked (created or migrated) by the writer: a foreign or unwritable
        # file fails now, before any test runs. The run's row is written with its first
        # exchange: a session that compares nothing (--collect-only) leaves no empty run.

    def add(self, result: PairResult) -> None:
        ev = result.evaluated
        self.writer.add(ev.row, ev.differences, ev.noise, ev.conversations)
        self.run.exchanges += 1
        self.run.requests += 1
        if self.run.exchanges == 1:
            self.writer.run_changed(self.run)
        if self.writer.pending >= FLUSH_ROWS:
            self.writer.run_changed(self.run)
            self._flush()

    def _flush(self) -> None:
        batch = self.writer.detach()
        try:
            self.writer.write(batch)
        except StoreError:
            # Nothing recorded is lost: the rows go to the spill file beside the store.
            self.writer.spill(batch, spill_path(self.db, self.run.run_id))
            raise
        finally:
            self.writer.release()

    def close(self) -> None:
        if not self.run.exchanges:
            return
        self.run.ended_at = time.time()
        self.writer.run_changed(self.run)
        self._flush()
