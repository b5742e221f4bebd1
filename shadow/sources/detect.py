"""Telling a traffic file's format from its first bytes.

    {"log": {...}}            HAR: a JSON object whose key is "log"
    {"method": .., "url": ..} JSON Lines: the first line is one such object
    123:4:...}                mitmproxy dump: tnetstrings (length, ':', data, type byte)
    1 <id> <ts> <latency>     GoReplay: a payload header line, then raw HTTP

The extension only breaks ties (a JSON file that is neither clearly HAR nor
JSON Lines); it never overrides what the content says.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from typing import Any

from shadow.errors import InputError

FORMATS = ("har", "mitm", "gor", "jsonl")

SNIFF_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_GZIP = b"\x1f\x8b"
_EXTENSIONS = {
    ".har": "har",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".gor": "gor",
    ".mitm": "mitm",
    ".flow": "mitm",
    ".flows": "mitm",
    ".dump": "mitm",
}
GOR_SEPARATOR = "\n\U0001f435\U0001f648\U0001f649\n".encode()
_GOR_META = re.compile(rb"[123] [0-9A-Za-z_-]+ -?\d+( -?\d+)?\r?")
_HTTP_START = re.compile(rb"([A-Z]+ \S+ HTTP/\d|HTTP/\d(\.\d)? \d{3})")
_TNET_PREFIX = re.compile(rb"(\d{1,12}):\d{1,12}:")
_HAR_START = re.compile(rb'\{\s*"log"\s*:\s*\{')


def read_head(path: str, size: int = SNIFF_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _json_first_line(data: bytes) -> Any:
    line = data.split(b"\n", 1)[0]
    try:
        return json.loads(line)
    except ValueError:
        return None


def _is_tnetstring_dump(path: str, head: bytes) -> bool:
    """A dict tnetstring: '<n>:' then a key's own '<m>:', and '}' after n bytes."""
    match = _TNET_PREFIX.match(head)
    if not match:
        return False
    end = match.end(1) + 1 + int(match.group(1))  # offset of the type byte
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    if end >= size:
        return True  # cut short: the reader will report the truncation
    with open(path, "rb") as fh:
        fh.seek(end)
        return fh.read(1) == b"}"


def _is_gor(head: bytes) -> bool:
    first, _, rest = head.partition(b"\n")
    if not _GOR_META.fullmatch(first):
        return False
    return GOR_SEPARATOR in head or bool(_HTTP_START.match(rest))


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def detect_format(path: str) -> str:
    """ "har", "mitm", "gor" or "jsonl", judged from the file's content.

    Raises InputError for an unreadable, empty, binary or unrecognised file.
    """
    head = read_head(path)
    if not head.strip():
        raise InputError(f"{path}: empty file, nothing to read")
    ext = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"{"):
        first = _json_first_line(text)
        if isinstance(first, dict) and "method" in first and ("url" in first or "path" in first):
            return "jsonl"
        if (isinstance(first, dict) and "log" in first) or _HAR_START.match(text):
            return "har"
        if ext in ("har", "jsonl"):
            return ext
        raise InputError(
            f"{path}: JSON, but not a recognised traffic file "
            '(neither a HAR with "log" nor JSON Lines with "method" and "url")'
        )
    if _is_tnetstring_dump(path, head):
        return "mitm"
    if _is_gor(head):
        return "gor"
    if head.startswith(_GZIP):
        raise InputError(f"{path}: gzip-compressed; decompress it first (gunzip)")
    if _looks_binary(head):
        raise InputError(f"{path}: binary data, not a recognised traffic file")
    raise InputError(
        f"{path}: not a recognised traffic file (expected HAR, mitmproxy dump, "
        "GoReplay or JSON Lines)"
    )
