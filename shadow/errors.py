"""Exceptions raised by shadow.

ShadowError                 base; the CLI prints str(e) on one line and exits non-zero
├── ConfigError             bad config file or option value          (exit 2)
├── StoreError              database missing, locked, not DuckDB     (exit 3)
├── BackendUnreachable      primary/candidate not answering at start (exit 4)
├── InputError              unreadable input file (replay)           (exit 5)
└── ListenError             cannot listen on --listen (busy, bad host) (exit 6)
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
