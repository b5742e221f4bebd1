"""ISO-8601 date-times as instants: "Z" vs "+00:00", ".000" vs none, other offsets.

`instant("2024-05-01T12:00:00+02:00") == instant("2024-05-01T10:00:00.000Z")`:
both are the same moment. Only extended-format date-times with a time of day are
recognised (`YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][zone]`); bare dates, basic
format (`20240501T1000Z`), week dates and anything else are not instants and are
left alone. A date-time without a zone is a wall time: it equals only another
wall time (never a zoned instant, whose meaning it cannot know). Fractions are
kept to every digit, so `.123456789` and `.123456788` stay different.
"""

from __future__ import annotations

import re
from datetime import date

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?\Z"
)

Instant = tuple[bool, int, str]  # (has a zone, seconds since 0001-01-01 [UTC], fraction digits)


def instant(text: str) -> Instant | None:
    """The instant an ISO-8601 date-time string names, or None if it is not one."""
    if len(text) < 16 or len(text) > 64 or text[4] != "-":
        return None  # cheap rejection of most strings before the regex
    m = _ISO.match(text)
    if m is None:
        return None
    year, month, day, hour, minute = map(int, m.group(1, 2, 3, 4, 5))
    second = int(m.group(6) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None  # 24:00 and leap seconds: too rare to be worth guessing
    try:
        days = date(year, month, day).toordinal()
    except ValueError:
        return None
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    zoned = m.group(8) is not None or m.group(9) is not None
    if m.group(9) is not None:
        off_h, off_m = int(m.group(10)), int(m.group(11) or 0)
        if off_h > 23 or off_m > 59:
            return None
        offset = (off_h * 60 + off_m) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    return zoned, seconds, (m.group(7) or "").rstrip("0")


def same_instant(a: str, b: str) -> bool:
    """True when both strings are ISO-8601 date-times naming the same instant."""
    ia = instant(a)
    return ia is not None and ia == instant(b)


def canonical_instant(text: str) -> str | None:
    """One spelling per instant (UTC with "Z", fraction without trailing zeros), or None.

    A wall time (no zone) stays without one. Idempotent: the canonical spelling
    of a canonical spelling is itself.
    """
    parsed = instant(text)
    if parsed is None:
        return None
    zoned, seconds, fraction = parsed
    days, rest = divmod(seconds, 86400)
    if not 1 <= days <= date.max.toordinal():
        return None  # an offset pushed it outside years 1-9999: leave the text alone
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    frac = f".{fraction}" if fraction else ""
    zone = "Z" if zoned else ""
    return f"{date.fromordinal(days).isoformat()}T{hour:02}:{minute:02}:{second:02}{frac}{zone}"
