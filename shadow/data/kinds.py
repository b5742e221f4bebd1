"""Column kinds: what a value is compared as, and its canonical text.

Every compared column has one kind (its `cast` in `[data.tables.NAME]`, else the new
side's column type, else the old side's). `convert` turns a value read from either
database into the JSON value that is compared (with the comparators' rules), and
`canonical` into the text that is hashed for a segment's checksum.

Two rules keep the checksums honest:
- `canonical` is a function of the converted value, so rows that compare equal are
  never hashed differently *by this function*; and a SQL canonical text
  (`shadow.data.postgres`) is the raw value's own text where it cannot match this
  one, so different rows never hash alike (a checksum can only send rows to be read
  that turn out equal, never hide a difference, short of an MD5 collision).
- where the SQL text can match (`sql_kind` equal to the kind), it is built to
  equal this function's text (`pg_float`, `pg_jsonb`), so equal rows in PostgreSQL
  and SQLite give equal checksums and are never read.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Kind = Literal[
    "text", "integer", "number", "decimal", "boolean", "timestamp", "date", "json", "bytes"
]  # fmt: skip
KINDS: tuple[Kind, ...] = (
    "text", "integer", "number", "decimal", "boolean", "timestamp", "date", "json", "bytes",
)  # fmt: skip

# old side's kind -> kinds it may be converted to (besides itself and text)
_CONVERTIBLE: dict[str, set[str]] = {
    "text": set(KINDS),
    "integer": {"number", "decimal", "boolean", "timestamp"},
    "number": {"integer", "decimal"},
    "decimal": {"integer", "number"},
    "boolean": {"integer"},
    "timestamp": {"date"},
    "date": {"timestamp"},
    "json": set(),
    "bytes": set(),
}


def compatible(actual: str, kind: str) -> bool:
    """Whether a column of `actual` kind can be compared as `kind`."""
    return actual == kind or kind == "text" or kind in _CONVERTIBLE.get(actual, set())


def pg_kind(type_name: str) -> Kind:
    """The kind of a PostgreSQL type name (`int8`, `timestamptz`, `_int4`, ...)."""
    t = type_name.lower()
    if t in ("int2", "int4", "int8", "smallint", "integer", "bigint", "oid"):
        return "integer"
    if t in ("float4", "float8", "real", "double precision"):
        return "number"
    if t in ("numeric", "decimal"):
        return "decimal"  # exact: compared digit for digit
    if t in ("bool", "boolean"):
        return "boolean"
    if t in ("timestamp", "timestamptz"):
        return "timestamp"
    if t == "date":
        return "date"
    if t in ("json", "jsonb"):
        return "json"
    if t == "bytea":
        return "bytes"
    return "text"


def sqlite_kind(declared: str) -> Kind:
    """The kind of a SQLite column from its declared type (SQLite's affinity rules)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if "BOOL" in t:
        return "boolean"
    if "TIMESTAMP" in t or "DATETIME" in t:
        return "timestamp"
    if "DATE" in t:
        return "date"
    if "JSON" in t:
        return "json"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if "BLOB" in t:
        return "bytes"
    if any(x in t for x in ("NUMERIC", "DECIMAL")):
        return "decimal"
    if any(x in t for x in ("REAL", "FLOA", "DOUB")):
        return "number"
    return "text"


# --- converting a value to what is compared -------------------------------------------------


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except (OverflowError, ValueError):  # before year 1 in UTC: no instant Python holds
            return None
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)  # epoch seconds
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return _instant(parsed)
    return None


def _timestamp_text(dt: datetime) -> str:
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())  # exact: '9007199254740993' is no float
        except ValueError:
            pass
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x


def convert(kind: str, value: Any) -> Any:
    """The JSON value compared for a database value of a column of `kind`.

    A value that does not convert (text that is no timestamp, say) stays as it is
    (as text), so it shows as a difference rather than vanishing. Bytes that are not
    UTF-8 become `base64:...` text.
    """
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes) and kind != "bytes":
        text = _utf8(value)
        if text is None:
            return "base64:" + base64.b64encode(value).decode("ascii")
        value = text
    if kind == "text":
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, float):
            return pg_float(value)
        return value if isinstance(value, str) else str(value)
    if kind == "integer":
        if isinstance(value, bool):
            return int(value)
        n = _number(value)
        if isinstance(n, float) and n.is_integer():
            return int(n)
        return n if n is not None else _plain(value)
    if kind == "number":
        n = _number(value)
        if n is None:
            return _plain(value)
        x = float(n)
        return x if math.isfinite(x) else pg_float(x)
    if kind == "decimal":
        d = _decimal(value)
        return _exact(d) if d is not None else _plain(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_TEXT:
            return _BOOLEAN_TEXT[value.strip().lower()]
        return _plain(value)
    if kind == "timestamp":
        dt = _instant(value)
        return _timestamp_text(dt) if dt is not None else _plain(value)
    if kind == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            text = value.strip()
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                pass
            try:  # a date with a time of day; '0044-03-15 BC' stays as it is
                return datetime.fromisoformat(text).date().isoformat()
            except ValueError:
                return value
        return _plain(value)
    if kind == "json":
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                return value
            # a lone surrogate (\\ud800) is no Unicode text: such JSON is compared as written
            return value if "\\u" in value and not _unicode(parsed) else parsed
        return _plain(value)
    if kind == "bytes":
        if isinstance(value, bytes):
            return "base64:" + base64.b64encode(value).decode("ascii")
        return _plain(value)
    return _plain(value)


def _utf8(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(str(value))
    if isinstance(value, int | str):
        try:
            return Decimal(value.strip() if isinstance(value, str) else value)
        except (InvalidOperation, ValueError):
            return None
    return None


def _exact(d: Decimal) -> float | str:
    # A number JSON can carry exactly stays a number (tolerances apply to it); one a
    # double would round is compared as its digits.
    if not d.is_finite():
        return decimal_text(d)
    f = float(d)  # always a float: 1.004 against 1 is a number that moved, not a type
    return f if math.isfinite(f) and Decimal(repr(f)) == d else decimal_text(d)


def decimal_text(d: Decimal) -> str:
    """An exact number as PostgreSQL's `trim_scale(numeric)::text` prints it."""
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "0"
    text = format(d, "f")  # exact: normalize() would round to the context's 28 digits
    return text.rstrip("0").rstrip(".") if "." in text else text


# JSON with its numbers kept as written (as PostgreSQL's numeric does): one decoder
_NUMERIC_JSON = json.JSONDecoder(parse_float=Decimal)
_BOOLEAN_TEXT = {"t": True, "true": True, "1": True, "f": False, "false": False, "0": False}


def _unicode(parsed: Any) -> bool:
    """Whether parsed JSON holds only real characters (no lone surrogate)."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_text(value: str) -> str:
    """The canonical text of JSON text: PostgreSQL's jsonb text, or `raw:` and the text."""
    try:
        text = pg_jsonb(_NUMERIC_JSON.decode(value))
    except (ValueError, InvalidOperation, RecursionError):
        return "raw:" + value
    if "\\u" in value:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: as convert, the text as written
            return "raw:" + value
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# --- canonical text (what a checksum hashes) --------------------------------------------------


def _marked(converted: Any) -> str:
    # A value that did not convert to its kind's own type: its type and repr after a
    # NUL, which no PostgreSQL text holds, so it never equals a converted value's text.
    return f"\x00{type(converted).__name__}:{converted!r}"


def canonical(kind: str, value: Any) -> str | None:
    """The text hashed for a value of a column of `kind`; None for NULL.

    Equal to the text PostgreSQL builds for a column whose type is of that kind
    (`shadow.data.postgres.canonical_sql`), so equal rows hash alike on both engines;
    values whose converted values differ never get the same text.
    """
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = value.tobytes()
    if kind == "bytes":
        return "\\x" + value.hex() if isinstance(value, bytes) else _marked(value)
    if kind == "json":
        if isinstance(value, bytes):
            text = _utf8(value)
            if text is None:
                return _marked(value)
            value = text
        if isinstance(value, str):
            return _json_text(value)
        converted = convert(kind, value)
        return pg_jsonb(converted) if _is_json(converted) else _marked(converted)
    if isinstance(value, bytes) and _utf8(value) is None:
        return _marked(value)  # not text: never equal to any text's canonical form
    converted = convert(kind, value)
    t = type(converted)
    if kind == "number" and (t is int or t is float):
        return pg_float(float(converted))
    if kind == "number" and converted in ("NaN", "Infinity", "-Infinity"):
        return converted
    if kind == "decimal" and (t is int or t is float):
        return decimal_text(Decimal(repr(converted)) if t is float else Decimal(converted))
    if kind == "integer" and t is int:
        return str(converted)
    if kind == "boolean" and t is bool:
        return "true" if converted else "false"
    if kind in ("text", "decimal", "timestamp", "date") and t is str:
        return converted
    return _marked(converted)


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _fast_text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    return canonical("text", v)


def _fast_integer(v: Any) -> str | None:
    if v is None:
        return None
    if type(v) is int:
        return str(v)
    return canonical("integer", v)


def _fast_number(v: Any) -> str | None:
    if v is None:
        return None
    t = type(v)
    if t is float:
        if 1e-4 <= abs(v) < 1e15:  # where repr and PostgreSQL agree but for a trailing ".0"
            r = repr(v)
            return r[:-2] if r.endswith(".0") else r
        return pg_float(v)
    if t is int and -(10**15) < v < 10**15:
        return str(v)  # what pg_float(float(v)) gives
    return canonical("number", v)


def _fast_timestamp(v: Any) -> str | None:
    if v is None:
        return None
    if type(v) is str:
        try:
            dt = datetime.fromisoformat(v.strip())
        except ValueError:
            return canonical("timestamp", v)
        if dt.tzinfo is not None:
            try:
                dt = dt.astimezone(UTC)
            except (OverflowError, ValueError):
                return canonical("timestamp", v)
        return _timestamp_text(dt)
    return canonical("timestamp", v)


def _fast_json(v: Any) -> str | None:
    if v is None:
        return None
    if type(v) is str:
        return _json_text(v)
    return canonical("json", v)


_FAST: dict[str, Callable[[Any], str | None]] = {
    "timestamp": _fast_timestamp,
    "json": _fast_json,
    "text": _fast_text,
    "integer": _fast_integer,
    "number": _fast_number,
}


def canonical_for(kind: str) -> Callable[[Any], str | None]:
    """`canonical` for one kind, with fast paths for the common Python types."""
    fast = _FAST.get(kind)
    if fast is not None:
        return fast
    return lambda v: canonical(kind, v)


def pg_float(x: float) -> str:
    """`x` as PostgreSQL prints a float8 (shortest exact digits, `1e+16`, `NaN`)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + exp  # position of the decimal point in `digits`
    e = point - 1  # scientific exponent
    minus = "-" if sign else ""
    if e < -4 or e >= 15:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def _pg_numeric(d: Decimal) -> str:
    text = format(d, "f")
    # numeric has no negative zero: -0.00 prints as 0.00
    return text[1:] if text.startswith("-") and d == 0 else text


_PLAIN = re.compile(r'[\x00-\x1f"\\]')


def _pg_string(s: str) -> str:
    if not _PLAIN.search(s):
        return f'"{s}"'
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _key_order(k: str) -> tuple[int, bytes]:
    b = k.encode()
    return len(b), b


def pg_jsonb(value: Any) -> str:
    """`value` as PostgreSQL prints it as `jsonb` (keys by length, then bytes)."""
    t = type(value)
    if t is str:
        return _pg_string(value)
    if t is int:
        return str(value)
    if t is dict:
        keys = sorted(value, key=_key_order)
        return "{" + ", ".join(f"{_pg_string(k)}: {pg_jsonb(value[k])}" for k in keys) + "}"
    if t is list:
        return "[" + ", ".join(pg_jsonb(v) for v in value) + "]"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return _pg_numeric(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _pg_numeric(Decimal(repr(value)))
    if isinstance(value, str):
        return _pg_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(pg_jsonb(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=_key_order)
        return "{" + ", ".join(f"{_pg_string(k)}: {pg_jsonb(value[k])}" for k in keys) + "}"
    return _pg_string(str(value))


_QUOTE = re.compile(r'[",\\() \t\n\r\v\f]')


def row_text(parts: list[str | None]) -> str:
    """One row's hashed text: PostgreSQL's text of `ROW(p1, p2, ...)` (injective).

    A value is quoted when empty or holding a quote, backslash, parenthesis, comma
    or white space (quotes and backslashes doubled inside); NULL is nothing.
    """
    out = []
    for p in parts:
        if p is None:
            out.append("")
        elif p and not _QUOTE.search(p):
            out.append(p)
        else:
            out.append('"' + p.replace("\\", "\\\\").replace('"', '""') + '"')
    return "(" + ",".join(out) + ")"


__all__ = [
    "KINDS",
    "Kind",
    "canonical",
    "canonical_for",
    "compatible",
    "convert",
    "decimal_text",
    "pg_float",
    "pg_jsonb",
    "pg_kind",
    "row_text",
    "sqlite_kind",
]
