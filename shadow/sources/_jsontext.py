"""A JSON file read one value at a time through a window that only moves forward.

`JsonText` keeps about one chunk of the file's text, or the value being
decoded, and never more than `limit` bytes of one value; each value is decoded
by the json module's C decoder (`raw_decode`), so reading is as fast as a
whole-file `json.loads` while memory follows the largest value, not the file.
A caller walks the file's structure with `peek`, `expect`, `value` and `skip`
(see har.py's walker).

The text is decoded as UTF-8 with surrogateescape, as a whole-file read did:
bytes that are not UTF-8 come out as lone surrogates in strings and go back to
the same bytes with `str.encode("utf-8", "surrogateescape")`. Whatever json
accepts is accepted (NaN, 1e400, lone-surrogate escapes). An incremental parser
such as ijson was measured and not taken: its C backend (yajl) refuses those
bytes and values, and was no faster than `raw_decode` one value at a time.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from typing import Any, BinaryIO

from shadow.sources._base import too_large

CHUNK = 1 << 20  # bytes read at a time; the window holds this much text, or one entry
_WS = " \t\n\r"
_WS_RUN = re.compile(r"[ \t\n\r]*")
_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["\[\]{}]')
_SCALAR_END = re.compile(r"[,\]} \t\n\r]")
_SYNTAX_MARGIN = 4096  # characters from the window's end: see _wants_text
_TAIL = 4096  # bytes at the file's end looked at to tell a cut file
_decode = json.JSONDecoder().raw_decode


class Damage(Exception):
    """The JSON breaks at `where`; `cut` when the file ends where more was expected."""

    def __init__(self, reason: str, where: str, *, cut: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where
        self.cut = cut


class Unreadable(Exception):
    """The value at the cursor is framed JSON that will not be decoded; the cursor has not moved."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _wants_text(error: json.JSONDecodeError, size: int) -> bool:
    """Whether more text may mend `error` in a window of `size` characters.

    A value cut by the window's end fails at that end (a number, a literal, an
    escape) or as a string that does not end; any other failure is in the JSON.
    """
    return error.msg.startswith("Unterminated string") or error.pos >= size - _SYNTAX_MARGIN


def _skip_ws(text: str, pos: int) -> int:
    match = _WS_RUN.match(text, pos)
    return match.end() if match else pos


class JsonText:
    """The file's text seen through a window that only moves forward.

    Nothing before the cursor is kept: the window holds about one chunk, or the
    value being decoded, which may grow it to `limit` bytes and no further.
    `line` and `column` of the window's start are kept up for messages.
    """

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh = fh
        self.limit = limit
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # the line buf[0] is on
        self.column = 0  # characters before buf[0] on that line

    def _fill(self, size: int) -> bool:
        """Drop the text before the cursor, append about `size` bytes more; False at the end."""
        if self.eof:
            return False
        data = self.fh.read(size)
        text = self.decoder.decode(data, final=not data)
        if not data:
            self.eof = True
        if text:
            self._drop()
            self.buf += text
        return bool(data or text)

    def _drop(self) -> None:
        lines = self.buf.count("\n", 0, self.pos)
        if lines:
            self.line += lines
            self.column = self.pos - self.buf.rfind("\n", 0, self.pos) - 1
        else:
            self.column += self.pos
        self.buf = self.buf[self.pos :]
        self.pos = 0

    def where(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        lines = self.buf.count("\n", 0, pos)
        column = pos - self.buf.rfind("\n", 0, pos) if lines else self.column + pos + 1
        return f"line {self.line + lines} column {column}"

    def peek(self) -> str:
        """The next character that is not whitespace, with the cursor moved to it."""
        while True:
            self.pos = _skip_ws(self.buf, self.pos)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill(CHUNK):
                raise Damage("unexpected end of file", self.where(), cut=True)

    def at_end(self) -> bool:
        """Whether only whitespace is left."""
        try:
            self.peek()
        except Damage:
            return True
        return False

    def expect(self, chars: str) -> str:
        char = self.peek()
        if char not in chars:
            raise Damage(f"expected {' or '.join(repr(c) for c in chars)}", self.where())
        self.pos += 1
        return char

    def value(self) -> Any:
        """Decode the JSON value at the cursor and move past it.

        Raises Damage where the JSON is broken or the file ends inside the value,
        and Unreadable for a value larger than `limit` or one json cannot build.
        """
        self.peek()
        while True:
            try:
                value, end = _decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if _wants_text(exc, len(self.buf)) and self._more():
                    continue  # the value went on past the window: decode it again
                raise self._damage(exc.msg, exc.pos) from None
            except RecursionError:
                raise Unreadable("nested too deeply to decode; passed over") from None
            except ValueError as exc:  # an integer of more than 4300 digits
                raise Unreadable(f"cannot be decoded ({exc}); passed over") from None
            # A number that ends with the window may go on in the next chunk.
            if end < len(self.buf) or not self._more():
                if self._size(self.pos, end) >= self.limit:  # it fitted in the window regardless
                    raise Unreadable(too_large(self.limit))
                self.pos = end
                return value

    def _size(self, start: int, end: int) -> int:
        """Bytes in the file of buf[start:end] (chars are never more than their bytes)."""
        if (end - start) * 4 < self.limit:  # fast path: so many characters are < limit bytes
            return end - start
        return len(self.buf[start:end].encode("utf-8", "surrogateescape"))

    def _more(self) -> bool:
        """Widen the window for the value at the cursor; False at the end of the file.

        Raises Unreadable when the value has reached the limit without ending.
        """
        if self.eof:
            return False
        pending = self._size(self.pos, len(self.buf))
        if pending >= self.limit:
            raise Unreadable(too_large(self.limit))
        # Doubling the window re-decodes a large value a few times, not once per chunk.
        return self._fill(max(CHUNK, min(pending, self.limit - pending)))

    def _damage(self, reason: str, pos: int) -> Damage:
        return Damage(reason, self.where(pos), cut=self._looks_cut())

    def _looks_cut(self) -> bool:
        """Whether the file does not end with "}" (then a break in it is called a cut)."""
        if self.eof:
            return not self.buf.rstrip(_WS).endswith("}")
        back = self.fh.tell()
        try:
            size = self.fh.seek(0, io.SEEK_END)
            self.fh.seek(max(0, size - _TAIL))
            tail = self.fh.read(_TAIL).rstrip(_WS.encode())
        finally:
            self.fh.seek(back)
        return bool(tail) and not tail.endswith(b"}")

    def skip(self) -> None:
        """Move past the JSON value at the cursor without decoding it.

        Only strings and brackets are followed, chunk by chunk, so memory stays at
        a chunk whatever the value's size; what lies inside is not checked.
        """
        if self.peek() not in '{["':
            self._skip_scalar()
            return
        depth, in_string, i = 0, False, self.pos
        while True:
            buf = self.buf
            while True:
                match = (_IN_STRING if in_string else _STRUCTURE).search(buf, i)
                if match is None:
                    i = len(buf)
                    break
                char = match.group()
                if char == "\\":
                    if match.end() == len(buf):
                        i = match.start()  # what it escapes is in the next chunk
                        break
                    i = match.end() + 1
                    continue
                i = match.end()
                if char == '"':
                    in_string = not in_string
                    if in_string or depth:
                        continue
                elif char in "{[":
                    depth += 1
                    continue
                else:
                    depth -= 1
                    if depth:
                        continue
                self.pos = i
                return
            self.pos = i
            if not self._fill(CHUNK):
                raise Damage("unexpected end of file", self.where(), cut=True)
            i = self.pos

    def _skip_scalar(self) -> None:
        while (match := _SCALAR_END.search(self.buf, self.pos)) is None:
            self.pos = len(self.buf)
            if not self._fill(CHUNK):
                return
        self.pos = match.start()
