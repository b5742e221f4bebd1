"""A progress line for long runs (rich), quiet when output is not a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class ReplayProgress:
    """Shows sent / compared / matched / differed / errors while a replay runs."""

    def __init__(self, enabled: bool = True) -> None:
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> ReplayProgress:
        if self.enabled:
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._progress.stop()

    def update(self, summary: Any) -> None:
        if not self.enabled:
            return
        v = summary.by_verdict
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = summary.sent / elapsed if elapsed else 0.0
        errors = v.get("candidate_error", 0) + v.get("primary_error", 0)
        self._progress.update(
            self._task,
            description=(
                f"sent {summary.sent} ({rate:.0f}/s) · compared {summary.compared} · "
                f"matched {v.get('match', 0)} · differed {v.get('differ', 0)} · errors {errors}"
            ),
        )
