"""Exceptions raised by shadow.

ShadowError                 base; the CLI prints str(e) on one line and exits non-zero
├── ConfigError             bad config file or option value          (exit 2)
├── StoreError              database missing, locked, not DuckDB     (exit 3)
├── BackendUnreachable      primary/candidate not answering at start (exit 4)
├── InputError              unreadable input file (replay)           (exit 5)
├── ListenError             cannot listen on --listen (busy, bad host) (exit 6)
├── FlagStoreError          flags file or Redis unreadable, unreachable (exit 8)
└── DatabaseError           `shadow data diff`: a database unreachable, refused, or a
                            table or query it cannot answer                 (exit 9)

Exit 7 (COPIES_LOST) is no exception: `shadow proxy` ran to the end but some
requests it saw were neither stored nor shed on purpose (a worker died or had to
be killed), or a worker was restarted; `runs.requests_lost` has the count.
"""

from __future__ import annotations


class ShadowError(Exception):
    """Base of every error shadow reports to a user."""

    exit_code = 1


class ConfigError(ShadowError):
    exit_code = 2


class StoreError(ShadowError):
    exit_code = 3


class BackendUnreachable(ShadowError):
    exit_code = 4


class InputError(ShadowError):
    exit_code = 5


class ListenError(ShadowError):
    exit_code = 6


COPIES_LOST = 7  # exit code of a proxy run that lost requests (see the module docstring)


class FlagStoreError(ShadowError):
    """The flag store (a flags file or Redis) cannot be read or written (exit 8)."""

    exit_code = 8


class DatabaseError(ShadowError):
    """A database of `shadow data diff` cannot be reached, opened or queried (exit 9)."""

    exit_code = 9
