"""Old-vs-new parity in a test suite: shadow's pytest plugin (docs/pytest.md).

`shadow.testing.plugin` is the `pytest11` entry point; `ShadowPair`, `PairResult` and
`Parity` are what the fixtures hand out; `asgi` / `wsgi` mark an app object whose kind
cannot be told from its signature. Names are imported on first use: pytest imports the
plugin in every run, and a run that does not use it must not pay for the comparators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "App": "backends",
    "Backend": "backends",
    "BackendError": "backends",
    "asgi": "backends",
    "wsgi": "backends",
    "PairResult": "pair",
    "Parity": "pair",
    "ShadowPair": "pair",
    "build_request": "pair",
}

if TYPE_CHECKING:
    from shadow.testing.backends import App, Backend, BackendError, asgi, wsgi
    from shadow.testing.pair import PairResult, Parity, ShadowPair, build_request


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'shadow.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"shadow.testing.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "App",
    "Backend",
    "BackendError",
    "PairResult",
    "Parity",
    "ShadowPair",
    "asgi",
    "build_request",
    "wsgi",
]
