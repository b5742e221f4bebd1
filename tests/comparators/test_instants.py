"""ISO-8601 instants: which spellings name the same moment, and which do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comparators.instants import canonical_instant, instant, same_instant


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123000+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T12:00:00+0200"),
        ("2024-05-01T10:00:00Z", "2024-05-01T05:30:00-04:30"),
        ("2024-05-01T23:30:00-01:00", "2024-05-02T00:30:00Z"),  # across midnight
        ("2024-12-31T23:00:00-01:00", "2025-01-01T00:00:00z"),  # across a year
        ("2024-05-01T10:00:00Z", "2024-05-01 10:00:00Z"),
        ("2024-05-01T10:00Z", "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00,5Z", "2024-05-01T10:00:00.50Z"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00.000"),  # two wall times
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00-00:00"),
    ],
)
def test_same_instant(a: str, b: str) -> None:
    assert same_instant(a, b) and same_instant(b, a)
    assert canonical_instant(a) == canonical_instant(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+01:00"),
        ("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.124Z"),
        ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123456788Z"),  # beyond µs
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00"),  # zoned vs wall time
        ("2024-05-01T10:00:00Z", "2024-05-01"),
        ("2024-05-01T10:00:00Z", "not a date"),
        ("2024-02-30T10:00:00Z", "2024-03-01T10:00:00Z"),  # no such day
        ("2024-05-01T24:00:00Z", "2024-05-02T00:00:00Z"),  # 24:00 is not recognised
        ("2024-05-01T10:00:60Z", "2024-05-01T10:01:00Z"),  # nor leap seconds
        ("2024-05-01T10:00:00+24:00", "2024-04-30T10:00:00Z"),
        ("20240501T100000Z", "2024-05-01T10:00:00Z"),  # basic format is not handled
        ("x2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00Zx", "2024-05-01T10:00:00Z"),
    ],
)
def test_different_or_not_instants(a: str, b: str) -> None:
    assert not same_instant(a, b) and not same_instant(b, a)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00.120+02:00", "2024-05-01T10:00:00.12Z"),
        ("2024-05-01 10:00", "2024-05-01T10:00:00"),
        ("0001-01-01T00:30:00+01:00", None),  # before year 1 in UTC: left alone
        ("hello", None),
        ("", None),
    ],
)
def test_canonical_instant(text: str, expected: str | None) -> None:
    assert canonical_instant(text) == expected


_moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _spell(moment: datetime, tz: timezone, digits: int, zulu: bool) -> str:
    local = moment.astimezone(tz)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{local.microsecond:06d}"
    if digits or local.microsecond:
        text += "." + (frac + "000")[: max(digits, len(frac.rstrip("0")))]
    offset = local.strftime("%z")
    if zulu and offset == "+0000":
        return text + "Z"
    return text + offset[:3] + ":" + offset[3:]


@given(_moments, _offsets, _offsets, st.integers(0, 9), st.booleans())
def test_any_two_spellings_of_one_instant_are_the_same(
    moment: datetime, tz1: timezone, tz2: timezone, digits: int, zulu: bool
) -> None:
    a, b = _spell(moment, tz1, digits, zulu), _spell(moment, tz2, 0, not zulu)
    assert same_instant(a, b), (a, b)


@given(_moments, _moments, _offsets, _offsets)
def test_different_instants_stay_different(
    m1: datetime, m2: datetime, tz1: timezone, tz2: timezone
) -> None:
    a, b = _spell(m1, tz1, 3, True), _spell(m2, tz2, 0, True)
    assert same_instant(a, b) is (m1 == m2)


@given(st.text(max_size=40) | _moments.map(lambda m: _spell(m, UTC, 2, False)))
def test_canonical_instant_is_idempotent_and_names_the_same_instant(text: str) -> None:
    canonical = canonical_instant(text)
    if canonical is None:
        return
    assert canonical_instant(canonical) == canonical
    assert instant(canonical) == instant(text)
