"""shadow: mirror HTTP traffic to a candidate backend, compare, store, report.

Layers (see ARCHITECTURE.md): sources (the mitmproxy addon, replay) produce
`Exchange` records; the pipeline sends copies, compares with `comparators`
and stores in DuckDB; `reports` renders the store.
"""

from shadow.errors import (
    BackendUnreachable,
    ConfigError,
    InputError,
    ShadowError,
    StoreError,
)
from shadow.model import BackendResponse, Exchange, Request

__all__ = [
    "BackendResponse",
    "BackendUnreachable",
    "ConfigError",
    "Exchange",
    "InputError",
    "Request",
    "ShadowError",
    "StoreError",
]
