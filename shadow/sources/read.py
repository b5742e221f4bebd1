"""`read_traffic`: one entry point over every reader, with the skip-or-fail policy."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from shadow.errors import InputError
from shadow.sources import gor, har, jsonl, mitm
from shadow.sources._base import BadEntry, Reader, Recorded
from shadow.sources.detect import FORMATS, detect_format

READERS: dict[str, Callable[[str], Reader]] = {
    "har": har.read,
    "mitm": mitm.read,
    "gor": gor.read,
    "jsonl": jsonl.read,
}


def read_traffic(
    path: str,
    *,
    fmt: str | None = None,
    skip_bad: bool = False,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[Recorded]:
    """Recorded exchanges of the traffic file at `path`, streamed in file order.

    The format is detected from the content unless `fmt` names it. Problems
    with the file as a whole (missing, empty, unrecognised) raise InputError
    here, before iteration. A bad entry raises InputError("<file>: entry <n>:
    <what>") while iterating, or with `skip_bad` is reported to `on_skip` and
    passed over; after a truncation nothing more can be read.
    """
    if fmt is None:
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise InputError(f"{path}: unknown traffic format {fmt!r} (one of {', '.join(FORMATS)})")
    else:
        try:
            empty = os.path.getsize(path) == 0
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if empty:
            raise InputError(f"{path}: empty file, nothing to read")
    return _entries(READERS[fmt](path), path, skip_bad, on_skip)


def _entries(
    items: Reader, path: str, skip_bad: bool, on_skip: Callable[[str], None] | None
) -> Iterator[Recorded]:
    try:
        for item in items:
            if not isinstance(item, BadEntry):
                yield item
                continue
            message = item.message(path)
            if not skip_bad:
                raise InputError(message)
            if on_skip is not None:
                on_skip(message)
            if item.final:
                return
    except OSError as exc:
        raise InputError(f"{path}: read failed: {exc.strerror or exc}") from None
    finally:
        items.close()
