"""What every reader shares: the `Recorded` entry, the bad-entry signal, small helpers.

Readers are generators of `Recorded | BadEntry`: a bad entry is yielded, not
raised, so that `read_traffic` can decide between failing and skipping and the
reader can carry on with the next entry when its format allows it.

Readers stream: they hold one entry at a time (GoReplay: the requests still
waiting for their response), never the whole file. One entry (a HAR entry, a
JSON line, a GoReplay record, a mitmproxy flow) may take at most
`MAX_ENTRY_BYTES` of the file; a larger one is a bad entry, passed over
without being read into memory.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from comparators import DecodeError, decode_body
from comparators.model import Headers, Payload
from shadow.model import Request


@dataclass(frozen=True, slots=True)
class Recorded:
    """One exchange read from a traffic file.

    `response` is what the original server answered (None when the file has no
    answer); `started_at` is unix seconds and `elapsed_ms` the recorded response
    time, each None when the file lacks it; `url` is the full original URL;
    `index` is the 0-based position of the entry in the file, for messages.
    """

    request: Request
    response: Payload | None
    started_at: float | None
    elapsed_ms: float | None
    url: str
    index: int


@dataclass(frozen=True, slots=True)
class BadEntry:
    """A reader's report that entry `index` could not be read.

    `final` means nothing after it can be read (a truncated file); `where`
    replaces the usual "entry <index>" when the problem lies between entries.
    """

    index: int
    reason: str
    final: bool = False
    where: str | None = None

    def message(self, path: str) -> str:
        where = self.where or f"entry {self.index}"
        return one_line(f"{path}: {where}: {self.reason}")


MAX_ENTRY_BYTES = 64 * 1024 * 1024


def size_text(size: int) -> str:
    """A byte count for messages: "64 MiB", or "1000 bytes" when not whole MiB."""
    mib = 1024 * 1024
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size} bytes"


def too_large(limit: int, what: str = "") -> str:
    """Why an entry over the size limit is passed over; `what` names the part that is."""
    subject = f"{what} " if what else ""
    return f"{subject}larger than {size_text(limit)}, the most one entry may take; passed over"


Item = Recorded | BadEntry
Reader = Generator[Item, None, None]


class EntryProblem(ValueError):
    """Raised by per-entry converters; readers turn it into a `BadEntry`."""


def one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def short(value: object, limit: int = 60) -> str:
    """repr() of a value cut for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def split_url(url: str) -> tuple[str, str]:
    """(path, raw query) of an absolute http(s) URL; the fragment is dropped."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": an unbalanced "[" in the host
        raise EntryProblem(f"not a valid URL ({exc}): {short(url)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise EntryProblem(f"not an absolute http(s) URL: {short(url)}")
    return parts.path or "/", parts.query


def split_target(target: str) -> tuple[str, str]:
    """(path, raw query) of a request target such as "/p?q=1"."""
    path, _, query = target.partition("?")
    return path or "/", query


def url_for_target(target: str, headers: Headers, scheme: str = "http") -> str:
    """The full URL of an origin-form target, using the Host header when there is one."""
    if "://" in target:
        return target
    host = next((v for k, v in headers if k.lower() == "host"), None)
    return f"{scheme}://{host}{target}" if host else target


def b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EntryProblem(f"{what} is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EntryProblem(f"{what} is not valid base64 ({exc})") from None


def _has_content_encoding(headers: Headers) -> bool:
    for key, value in headers:
        if key.lower() == "content-encoding":
            tokens = [t.strip().lower() for t in value.split(",")]
            if any(t and t != "identity" for t in tokens):
                return True
    return False


def wire_consistent(headers: Headers, body: bytes) -> Headers:
    """Headers that agree with `body`, for files that may hold decoded bodies.

    When a Content-Encoding is declared but `body` does not decode with it, the
    body is taken as already decoded (what HAR exporters do) and the
    Content-Encoding and Content-Length headers are dropped. A body that does
    decode is kept as the wire bytes it is, headers unchanged.
    """
    if not body or not _has_content_encoding(headers):
        return headers
    try:
        decode_body(headers, body)
    except DecodeError:
        drop = ("content-encoding", "content-length")
        return tuple((k, v) for k, v in headers if k.lower() not in drop)
    return headers


def str_pairs(pairs: Iterable[tuple[object, object]], what: str) -> Headers:
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise EntryProblem(f"{what}: header {short(key)} is not a pair of strings")
        out.append((key, value))
    return tuple(out)
