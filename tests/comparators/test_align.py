"""Migration-aware normalizers: int_float, iso_instants, null_absent, key_case, list keys.

Under key matching, the same records in another order are ONE `reordered` difference
at the list (values: the first keys in each order); `ignore_order` silences it.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from comparators_strategies import api_scalars, api_values, json_values
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from comparators import Comparison, Kind, Payload, Verdict, canonical_json, compare, parse_rules
from comparators.align import AUTO_KEY, KeyedList, keyable, plain, snake
from comparators.model import Headers

JSON: Headers = (("Content-Type", "application/json"),)
SWITCHES = ("int_float", "iso_instants", "null_absent", "key_case", "auto_list_key")


def _rules(**switches: bool) -> Any:
    """Rules with exactly the named body normalizers on."""
    return parse_rules({"normalize": {s: switches.get(s, False) for s in SWITCHES}})


ALL_ON = _rules(**dict.fromkeys(SWITCHES, True))
ONLY = {s: _rules(**{s: True}) for s in SWITCHES}
NONE_ON = _rules()


def _payload(value: Any) -> Payload:
    body = value if isinstance(value, bytes) else orjson.dumps(value)
    return Payload(200, JSON, body)


def _cmp(a: Any, b: Any, rules: Any = None, **table: Any) -> Comparison:
    return compare(_payload(a), _payload(b), rules if rules is not None else parse_rules(table))


def _diffs(result: Comparison) -> list[tuple[str, str, Any, Any]]:
    return [(d.path, d.kind.value, d.primary, d.candidate) for d in result.differences]


# --- tables -------------------------------------------------------------------------------

ITEMS = [{"id": i, "name": f"n{i}"} for i in range(1, 6)]
MANY = [{"id": i} for i in range(1, 13)]  # more records than a REORDERED shows


@pytest.mark.parametrize(
    ("table", "primary", "candidate", "diffs", "notes"),
    [
        # int_float (default on)
        ({}, {"a": 1}, {"a": 1.0}, [], ["int_float: $.a"]),
        ({}, b'{"a":100}', b'{"a":1e2}', [], ["int_float: $.a"]),
        ({}, b'{"a":1.50}', b'{"a":1.5}', [], []),  # both floats: equal as parsed
        ({}, {"a": 1}, {"a": 1.5}, [("$.a", "type_changed", 1, 1.5)], []),
        ({}, {"a": True}, {"a": 1}, [("$.a", "type_changed", True, 1)], []),
        ({}, {"a": "1"}, {"a": "1.0"}, [("$.a", "value_changed", "1", "1.0")], []),
        (
            {},
            {"a": 1, "b": [2, 3], "c": {"d": 4}, "e": 5},
            {"a": 1.0, "b": [2.0, 3.0], "c": {"d": 4.0}, "e": 5.0},
            [],
            ["int_float: 5 values ($.a, $.b[0], $.b[1], ...)"],
        ),
        (
            {"normalize": {"int_float": False}},
            {"a": 1},
            {"a": 1.0},
            [("$.a", "type_changed", 1, 1.0)],
            [],
        ),
        # iso_instants (default on)
        (
            {},
            {"t": "2024-05-01T10:00:00Z"},
            {"t": "2024-05-01T12:00:00.000+02:00"},
            [],
            ["iso_instants: $.t"],
        ),
        (
            {},
            {"t": "2024-05-01T10:00:00Z"},
            {"t": "2024-05-01T10:00:00+02:00"},
            [("$.t", "value_changed", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00+02:00")],
            [],
        ),
        (
            {"normalize": {"iso_instants": False}},
            {"t": "2024-05-01T10:00:00Z"},
            {"t": "2024-05-01T10:00:00+00:00"},
            [("$.t", "value_changed", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00")],
            [],
        ),
        # null_absent (default off)
        ({}, {"a": None, "b": 1}, {"b": 1}, [("$.a", "removed", None, None)], []),
        ({"normalize": {"null_absent": True}}, {"a": None}, {}, [], ["null_absent: $.a"]),
        ({"normalize": {"null_absent": True}}, {}, {"a": None}, [], ["null_absent: $.a"]),
        (
            {"normalize": {"null_absent": True}},
            {"a": None},
            {"a": 0},
            [("$.a", "type_changed", None, 0)],
            [],
        ),
        # key_case (default off)
        (
            {},
            {"createdAt": 1},
            {"created_at": 1},
            [("$.createdAt", "removed", 1, None), ("$.created_at", "added", None, 1)],
            [],
        ),
        (
            {"normalize": {"key_case": True}},
            {"createdAt": 1},
            {"created_at": 1},
            [("$.createdAt", "renamed", "createdAt", "created_at")],
            ["key_case: $.createdAt"],
        ),
        (
            {"normalize": {"key_case": True}},
            {"u": {"createdAt": 1}},
            {"u": {"created_at": 2}},
            [
                ("$.u.createdAt", "renamed", "createdAt", "created_at"),
                ("$.u.created_at", "value_changed", 1, 2),
            ],
            ["key_case: $.u.createdAt"],
        ),
        (  # the rename of a parent: children are compared under the new name
            {"normalize": {"key_case": True}},
            {"userInfo": {"firstName": "a"}},
            {"user_info": {"first_name": "b"}},
            [
                ("$.userInfo", "renamed", "userInfo", "user_info"),
                ("$.userInfo.firstName", "renamed", "firstName", "first_name"),
                ("$.user_info.first_name", "value_changed", "a", "b"),
            ],
            ["key_case: 2 keys ($.userInfo, $.userInfo.firstName)"],
        ),
        (  # two candidates for one name: ambiguous, nothing renamed
            {"normalize": {"key_case": True}},
            {"fooBar": 1},
            {"foo_bar": 1, "FooBar": 1},
            [
                ("$.FooBar", "added", None, 1),
                ("$.fooBar", "removed", 1, None),
                ("$.foo_bar", "added", None, 1),
            ],
            [],
        ),
        (  # both null under null_absent: two absent keys, not a rename
            {"normalize": {"key_case": True, "null_absent": True}},
            {"fooBar": None},
            {"foo_bar": None},
            [],
            ["null_absent: 2 keys ($.fooBar, $.foo_bar)"],
        ),
    ],
)
def test_normalizers(
    table: dict[str, Any], primary: Any, candidate: Any, diffs: list[Any], notes: list[str]
) -> None:
    result = _cmp(primary, candidate, **table)
    assert _diffs(result) == diffs
    assert list(result.notes) == notes
    assert result.verdict is (Verdict.DIFFER if diffs else Verdict.MATCH)


@pytest.mark.parametrize(
    ("table", "primary", "candidate", "diffs", "notes"),
    [
        (  # one inserted record is one ADDED difference, not every later item changed
            {},
            {"items": ITEMS},
            {"items": [*ITEMS[:2], {"id": 42, "name": "new"}, *ITEMS[2:]]},
            [("$.items[id=42]", "added", None, {"id": 42, "name": "new"})],
            [],
        ),
        (
            {},
            {"items": ITEMS},
            {"items": ITEMS[:1] + ITEMS[2:]},
            [("$.items[id=2]", "removed", {"id": 2, "name": "n2"}, None)],
            [],
        ),
        (  # the same records in another order: ONE difference at the list, and noted
            {},
            {"items": ITEMS},
            {"items": ITEMS[::-1]},
            [("$.items", "reordered", [1, 2, 3, 4, 5], [5, 4, 3, 2, 1])],
            ["auto_list_key: $.items reordered (records matched by id)"],
        ),
        (
            {},
            {"items": ITEMS},
            {"items": [*ITEMS[::-1][:4], {"id": 1, "name": "changed"}]},
            [
                ("$.items", "reordered", [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),
                ("$.items[id=1].name", "value_changed", "n1", "changed"),
            ],
            ["auto_list_key: $.items reordered (records matched by id)"],
        ),
        (  # ignore_order on the list: sorted first, so equal
            {"ignore_order": ["$.items"]},
            {"items": ITEMS},
            {"items": ITEMS[::-1]},
            [],
            ["sorted 2 lists at $.items (ignore_order)"],
        ),
        (  # at most 10 keys of each order are shown
            {},
            {"items": MANY},
            {"items": MANY[::-1]},
            [
                (
                    "$.items",
                    "reordered",
                    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "..."],
                    [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, "..."],
                )
            ],
            ["auto_list_key: $.items reordered (records matched by id)"],
        ),
        (  # the order of the records both sides have: an insert and a removal are no reorder
            {},
            {"items": ITEMS},
            {"items": [{"id": 42, "name": "new"}, *ITEMS[2:], ITEMS[0]]},
            [
                ("$.items", "reordered", [1, 3, 4, 5], [3, 4, 5, 1]),
                ("$.items[id=42]", "added", None, {"id": 42, "name": "new"}),  # document order
                ("$.items[id=2]", "removed", {"id": 2, "name": "n2"}, None),
            ],
            ["auto_list_key: $.items reordered (records matched by id)"],
        ),
        (  # string ids are printed as JSON strings
            {},
            [{"id": "a-1", "v": 1}, {"id": "b", "v": 2}],
            [{"id": "b", "v": 2}, {"id": "a-1", "v": 3}],
            [
                ("$", "reordered", ["a-1", "b"], ["b", "a-1"]),
                ('$[id="a-1"].v', "value_changed", 1, 3),
            ],
            ["auto_list_key: $ reordered (records matched by id)"],
        ),
        (  # nested keyed lists
            {},
            {"orders": [{"id": 1, "lines": [{"id": 3, "qty": 1}, {"id": 4, "qty": 1}]}]},
            {"orders": [{"id": 1, "lines": [{"id": 4, "qty": 1}, {"id": 3, "qty": 2}]}]},
            [
                ("$.orders[id=1].lines", "reordered", [3, 4], [4, 3]),
                ("$.orders[id=1].lines[id=3].qty", "value_changed", 1, 2),
            ],
            ["auto_list_key: $.orders[id=1].lines reordered (records matched by id)"],
        ),
        (  # repeated ids: compared by position
            {},
            [{"id": 1, "v": 1}, {"id": 1, "v": 2}],
            [{"id": 1, "v": 2}, {"id": 1, "v": 1}],
            [("$[0].v", "value_changed", 1, 2), ("$[1].v", "value_changed", 2, 1)],
            [],
        ),
        (  # bool ids are not ids
            {},
            [{"id": True}, {"id": False}],
            [{"id": False}, {"id": True}],
            [("$[0].id", "value_changed", True, False), ("$[1].id", "value_changed", False, True)],
            [],
        ),
        (
            {"normalize": {"auto_list_key": False}},
            {"items": ITEMS[:2]},
            {"items": ITEMS[1::-1]},
            [
                ("$.items[0].id", "value_changed", 1, 2),
                ("$.items[0].name", "value_changed", "n1", "n2"),
                ("$.items[1].id", "value_changed", 2, 1),
                ("$.items[1].name", "value_changed", "n2", "n1"),
            ],
            [],
        ),
        (  # an explicit key field, with auto_list_key off
            {"list_keys": {"$..reports": "code"}, "normalize": {"auto_list_key": False}},
            {"a": {"reports": [{"code": "x", "n": 1}, {"code": "y", "n": 2}]}},
            {"a": {"reports": [{"code": "y", "n": 2}, {"code": "z", "n": 3}]}},
            [
                ('$.a.reports[code="x"]', "removed", {"code": "x", "n": 1}, None),
                ('$.a.reports[code="z"]', "added", None, {"code": "z", "n": 3}),
            ],
            [],
        ),
        (  # an explicit key field: a reorder is one difference too
            {"list_keys": {"$.reports": "code"}},
            {"reports": [{"code": "x", "n": 1}, {"code": "y", "n": 2}]},
            {"reports": [{"code": "y", "n": 2}, {"code": "x", "n": 1}]},
            [("$.reports", "reordered", ["x", "y"], ["y", "x"])],
            ["list_keys: $.reports reordered (records matched by key)"],
        ),
        (  # an explicit key wins over the automatic id
            {"list_keys": {"$": "sku"}},
            [{"id": 1, "sku": "a"}, {"id": 2, "sku": "b"}],
            [{"id": 2, "sku": "a"}, {"id": 1, "sku": "b"}],
            [
                ('$[sku="a"].id', "value_changed", 1, 2),
                ('$[sku="b"].id', "value_changed", 2, 1),
            ],
            [],
        ),
        (  # an explicit key missing from an item: by position, and said so
            {"list_keys": {"$.r": "code"}},
            {"r": [{"code": "x"}, {"n": 1}]},
            {"r": [{"code": "x"}, {"n": 2}]},
            [("$.r[1].n", "value_changed", 1, 2)],
            ["list_keys: $.r compared by position (key missing or repeated)"],
        ),
        (  # a tolerance pattern with [*] covers keyed records
            {"tolerances": {"$.items[*].price": 0.1}},
            {"items": [{"id": 1, "price": 1.0}, {"id": 2, "price": 2.0}]},
            {"items": [{"id": 2, "price": 2.05}, {"id": 1, "price": 1.5}]},
            [
                ("$.items", "reordered", [1, 2], [2, 1]),
                ("$.items[id=1].price", "value_changed", 1.0, 1.5),
            ],
            [
                "auto_list_key: $.items reordered (records matched by id)",
                "tolerated 1 numeric difference",
            ],
        ),
        (  # lists of other lengths line up equivalent items (here 1 and 1.0)
            {},
            [1, 2, 3, 4],
            [1.0, 2, 9, 3, 4],
            [("$[2]", "added", None, 9)],
            ["int_float: $[0]"],
        ),
    ],
)
def test_list_keys(
    table: dict[str, Any], primary: Any, candidate: Any, diffs: list[Any], notes: list[str]
) -> None:
    result = _cmp(primary, candidate, **table)
    assert _diffs(result) == diffs
    assert list(result.notes) == notes
    assert result.verdict is (Verdict.DIFFER if diffs else Verdict.MATCH)


def test_long_list_with_one_insert_and_one_removal() -> None:
    items = [{"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(300)]
    candidate = [*items[:120], {"id": 1000, "name": "new", "price": 1.0}, *items[120:]]
    del candidate[250]
    result = _cmp({"items": items}, {"items": candidate})
    assert [(d.path, d.kind) for d in result.differences] == [  # in document order
        ("$.items[id=1000]", Kind.ADDED),
        ("$.items[id=249]", Kind.REMOVED),
    ]


def test_renames_and_keyed_records_together() -> None:
    rules = parse_rules({"normalize": {"key_case": True}})
    primary = {"lineItems": [{"id": 1, "unitPrice": 2}, {"id": 2, "unitPrice": 3}]}
    candidate = {"line_items": [{"id": 2, "unit_price": 3.0}, {"id": 1, "unit_price": 5}]}
    result = _cmp(primary, candidate, rules)
    assert _diffs(result) == [
        ("$.lineItems", "renamed", "lineItems", "line_items"),
        ("$.lineItems", "reordered", [1, 2], [2, 1]),  # at the primary's path, as RENAMED
        ("$.lineItems[id=1].unitPrice", "renamed", "unitPrice", "unit_price"),
        ("$.lineItems[id=2].unitPrice", "renamed", "unitPrice", "unit_price"),
        ("$.line_items[id=1].unit_price", "value_changed", 2, 5),
    ]
    assert result.notes == (
        "auto_list_key: $.line_items reordered (records matched by id)",
        "int_float: $.line_items[id=2].unit_price",
        "key_case: 3 keys ($.lineItems, $.lineItems[id=1].unitPrice, $.lineItems[id=2].unitPrice)",
    )


def test_ignore_order_sorts_equivalent_items_alike() -> None:
    rules = parse_rules({"ignore_order": ["$.t"]})
    primary = {"t": ["2024-05-01T10:00:00Z", 2.0, "2024-05-01T09:00:00Z"]}
    candidate = {"t": [2, "2024-05-01T11:00:00+02:00", "2024-05-01T10:00:00.000+00:00"]}
    result = _cmp(primary, candidate, rules)
    assert result.verdict is Verdict.MATCH
    assert result.notes == (
        "sorted 2 lists at $.t (ignore_order)",
        "int_float: $.t[2]",
        "iso_instants: 2 values ($.t[0], $.t[1])",
    )


def test_ignore_order_on_keyed_records_never_reports_reordered() -> None:
    rules = parse_rules({"ignore_order": ["$.items"]})
    primary = {"items": [{"amount": 1, "id": 1}, {"amount": 2, "id": 2}]}
    candidate = {"items": [{"amount": 3, "id": 1}, {"amount": 2, "id": 2}]}
    assert _diffs(_cmp(primary, candidate, rules)) == [
        ("$.items[id=1].amount", "value_changed", 1, 3)
    ]


def test_reported_values_are_plain_json() -> None:
    primary = {"a": [{"id": 1, "sub": [{"id": 2, "v": 1}]}], "b": 1}
    candidate = {"a": [{"id": 1, "sub": [{"id": 2, "v": 2}]}], "b": [{"id": 1}]}
    for diff in _cmp(primary, candidate).differences:
        for value in (diff.primary, diff.candidate):
            assert orjson.dumps(value)  # no KeyedList, no KeyIndex keys
            assert "KeyedList" not in repr(value)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("createdAt", "created_at"),
        ("CreatedAt", "created_at"),
        ("created-at", "created_at"),
        ("created_at", "created_at"),
        ("HTTPStatus", "http_status"),
        ("userID", "user_id"),
        ("v2Name", "v2_name"),
        ("id", "id"),
    ],
)
def test_snake(key: str, expected: str) -> None:
    assert snake(key) == expected


def test_keyable() -> None:
    assert keyable([{"id": 1}, {"id": "1"}], "id")  # 1 and "1" are different keys
    assert not keyable([{"id": 1}, {"id": 1}], "id")
    assert not keyable([{"id": 1.0}], "id")
    assert not keyable([{"id": None}], "id")
    assert not keyable([{"x": 1}], "id")
    assert not keyable([1], "id")
    assert keyable([], "id")


# --- properties: one per normalizer and all together ---------------------------------------

_offsets = st.integers(-12 * 60, 12 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _respell(text: str, tz: timezone, digits: int) -> str:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).astimezone(tz)
    out = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("." + "0" * digits if digits else "")
    offset = moment.strftime("%z")
    return out + offset[:3] + ":" + offset[3:]


def _is_records(value: Any) -> bool:
    return type(value) is list and bool(value) and keyable(value, AUTO_KEY)


@st.composite
def variants(draw: st.DrawFn, value: Any, switch: str) -> Any:
    """`value` said otherwise in a way that `switch` acts on.

    int_float, iso_instants, null_absent: noise that the switch makes equal;
    auto_list_key: every list of records shuffled (ONE reordered difference per list
    whose order changed, instead of a difference per position).
    """

    def noisy(v: Any, key: str | None = None) -> Any:
        kind = type(v)
        if kind is dict:
            out = {k: noisy(x, k) for k, x in v.items()}
            if switch == "null_absent":
                out = {k: x for k, x in out.items() if x is not None or draw(st.booleans())}
                if draw(st.booleans()):
                    out.setdefault("extra", None)
            return out
        if kind is list:
            items = [noisy(x) for x in v]
            if switch == "auto_list_key" and _is_records(items):
                items = draw(st.permutations(items))
            return items
        if key == AUTO_KEY:
            return v  # ids are matched exactly: 7 and 7.0, or two spellings, are two ids
        if switch == "int_float" and draw(st.booleans()):
            if kind is int and abs(v) < 2**53:
                return float(v)
            if kind is float and v.is_integer():
                return int(v)
        if switch == "iso_instants" and kind is str and re.fullmatch(r"\d{4}-.*T.*Z", v):
            return _respell(v, draw(_offsets), draw(st.integers(0, 6)))
        return v

    return noisy(value)


EQUAL_NOISE = ("int_float", "iso_instants", "null_absent")  # equal under their switch
NOISY = (*EQUAL_NOISE, "auto_list_key")


def _head(keys: list[Any]) -> list[Any]:
    """How a REORDERED difference shows an order: at most 10 keys, then "..."."""
    return keys if len(keys) <= 10 else [*keys[:10], "..."]


def _reorders(a: Any, b: Any) -> list[tuple[Any, Any]]:
    """(primary ids, candidate ids) of each list of records whose common ids are in
    another order; `b` is `a` with records shuffled (same keys, same lengths)."""
    if type(a) is dict and type(b) is dict:
        return [r for key in a.keys() & b.keys() for r in _reorders(a[key], b[key])]
    if type(a) is not list or type(b) is not list:
        return []
    if (a or b) and keyable(a, AUTO_KEY) and keyable(b, AUTO_KEY):
        by_id = {r[AUTO_KEY]: r for r in b}
        ids_a = [r[AUTO_KEY] for r in a if r[AUTO_KEY] in by_id]
        in_a = set(ids_a)
        ids_b = [r[AUTO_KEY] for r in b if r[AUTO_KEY] in in_a]
        here = [(_head(ids_a), _head(ids_b))] if ids_a != ids_b else []
        return here + [
            x for r in a if r[AUTO_KEY] in by_id for x in _reorders(r, by_id[r[AUTO_KEY]])
        ]
    return [x for i, j in zip(a, b, strict=False) for x in _reorders(i, j)]


@given(api_values, st.sampled_from(EQUAL_NOISE), st.data())
def test_noise_of_each_kind_is_equal_under_its_rule_and_noted(
    value: Any, switch: str, data: st.DataObject
) -> None:
    other = data.draw(variants(value, switch))
    assume(canonical_json(other) != canonical_json(value))
    result = _cmp(value, other, ONLY[switch])
    assert result.verdict is Verdict.MATCH, _diffs(result)
    assert any(note.startswith(switch) for note in result.notes), result.notes  # not silent
    assert _cmp(value, other, NONE_ON).verdict is Verdict.DIFFER


# Most drawn values hold no list of records to shuffle: the assume() rejects many.
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(api_values, st.data())
def test_shuffled_records_are_one_reordered_difference_per_list_and_noted(
    value: Any, data: st.DataObject
) -> None:
    other = data.draw(variants(value, "auto_list_key"))
    assume(canonical_json(other) != canonical_json(value))
    expected = _reorders(value, other)
    assert expected  # a changed order somewhere
    result = _cmp(value, other, ONLY["auto_list_key"])
    assert result.verdict is Verdict.DIFFER
    assert {d.kind for d in result.differences} == {Kind.REORDERED}, _diffs(result)
    assert len({d.path for d in result.differences}) == len(result.differences)  # one per list
    found = [(d.primary, d.candidate) for d in result.differences]
    assert sorted(found, key=repr) == sorted(expected, key=repr)
    assert any(note.startswith("auto_list_key") for note in result.notes), result.notes
    off = _cmp(value, other, NONE_ON)  # compared by position: no REORDERED
    assert off.verdict is Verdict.DIFFER
    assert Kind.REORDERED not in {d.kind for d in off.differences}


@given(api_values | json_values, st.sampled_from([*SWITCHES, "all"]))
def test_equal_inputs_stay_equal_and_nothing_is_noted(value: Any, switch: str) -> None:
    result = _cmp(value, value, ALL_ON if switch == "all" else ONLY[switch])
    assert (result.verdict, result.differences, result.notes) == (Verdict.MATCH, (), ())


@given(api_values, api_values, st.sampled_from([*SWITCHES, "all"]))
def test_aligning_twice_equals_aligning_once(a: Any, b: Any, switch: str) -> None:
    aligner = (ALL_ON if switch == "all" else ONLY[switch]).aligner
    once = aligner.align(a, b)
    first = (plain(once.primary), plain(once.candidate))
    again = aligner.align(*first)
    assert canonical_json(plain(again.primary)) == canonical_json(first[0])
    assert canonical_json(plain(again.candidate)) == canonical_json(first[1])
    assert again.renames == []  # renamed keys were renamed on both sides


@given(api_values | json_values, st.sampled_from([*SWITCHES, "all"]))
def test_semantic_form_is_idempotent(value: Any, switch: str) -> None:
    aligner = (ALL_ON if switch == "all" else ONLY[switch]).aligner
    once = aligner.semantic(value)
    assert canonical_json(aligner.semantic(once)) == canonical_json(once)


# The reference: equivalence written out independently of comparators.align.


def _oracle_instant(text: str) -> tuple[Any, ...] | None:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    moment = datetime.fromisoformat(m.group(1) + zone).astimezone(UTC)
    return moment.replace(tzinfo=None), Decimal("0." + (m.group(2) or "0"))


def equivalent(a: Any, b: Any, null_absent: bool = True) -> bool:
    """int == float, same instants, null == absent, records matched by unique id.

    Records matched by id must also come in the same order (another order is a
    REORDERED difference).
    """
    ta, tb = type(a), type(b)
    if ta is dict and tb is dict:
        for key in a.keys() | b.keys():
            if key in a and key in b:
                if not equivalent(a[key], b[key], null_absent):
                    return False
            elif not null_absent or (a if key in a else b)[key] is not None:
                return False
        return True
    if ta is list and tb is list:
        if (a or b) and keyable(a, AUTO_KEY) and keyable(b, AUTO_KEY):
            ka, kb = {r[AUTO_KEY]: r for r in a}, {r[AUTO_KEY]: r for r in b}
            same_order = [r[AUTO_KEY] for r in a] == [r[AUTO_KEY] for r in b]
            return same_order and all(equivalent(ka[k], kb[k], null_absent) for k in ka)
        return len(a) == len(b) and all(
            equivalent(x, y, null_absent) for x, y in zip(a, b, strict=True)
        )
    numbers = (int, float)
    if ta in numbers and tb in numbers:
        return bool(a == b)
    if ta is str and tb is str and a != b:
        ia = _oracle_instant(a)
        return ia is not None and ia == _oracle_instant(b)
    return ta is tb and a == b


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    """A value and a noisy copy, sometimes with real changes too."""
    value = draw(api_values)
    other = value
    for switch in draw(st.lists(st.sampled_from(NOISY), max_size=4)):
        other = draw(variants(other, switch))

    def mutate(v: Any) -> Any:
        if draw(st.integers(0, 7)) == 0:
            return draw(api_scalars | api_values)
        if isinstance(v, dict):
            return {k: mutate(x) for k, x in v.items() if draw(st.integers(0, 12))}
        if isinstance(v, list):
            return [mutate(x) for x in v]
        return v

    return value, mutate(other) if draw(st.booleans()) else other


@given(_pairs())
def test_match_exactly_when_equivalent(pair: tuple[Any, Any]) -> None:
    """No normalizer makes two truly different values equal (all of them on)."""
    a, b = pair
    result = _cmp(a, b, ALL_ON)
    assert (result.verdict is Verdict.MATCH) is equivalent(a, b), _diffs(result)


@given(_pairs())
def test_null_absent_off_keeps_null_and_absent_apart(pair: tuple[Any, Any]) -> None:
    a, b = pair
    rules = _rules(int_float=True, iso_instants=True, auto_list_key=True)
    result = _cmp(a, b, rules)
    assert (result.verdict is Verdict.MATCH) is equivalent(a, b, null_absent=False)


@given(
    st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False),
)
def test_int_float_keeps_different_numbers_different(x: float, y: float) -> None:
    result = _cmp({"n": x}, {"n": y}, ONLY["int_float"])
    assert (result.verdict is Verdict.MATCH) is (x == y)


@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)),
    st.integers(0, 10**6),
    _offsets,
    _offsets,
)
def test_iso_instants_keep_different_instants_different(
    moment: datetime, delta_us: int, tz1: timezone, tz2: timezone
) -> None:
    first = moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (moment.replace(microsecond=0) + timedelta(microseconds=delta_us)).replace(tzinfo=UTC)
    text = later.astimezone(tz2).isoformat()
    result = _cmp({"t": _respell(first, tz1, 3)}, {"t": text}, ONLY["iso_instants"])
    assert (result.verdict is Verdict.MATCH) is (delta_us == 0)


_camel = st.from_regex(r"[a-z]{1,5}(?:[A-Z][a-z]{1,4}){1,2}", fullmatch=True)


@given(_camel, api_scalars, api_scalars, st.booleans())
def test_key_case_reports_one_rename_and_any_value_change(
    key: str, x: Any, y: Any, null_absent: bool
) -> None:
    assume(not (null_absent and x is None and y is None))
    rules = _rules(key_case=True, null_absent=null_absent)
    result = _cmp({key: x, "same": 1}, {snake(key): y, "same": 1}, rules)
    renamed = ("$." + key, "renamed", key, snake(key))
    assert _diffs(result)[0] == renamed
    value_diffs = _diffs(result)[1:]
    assert (value_diffs == []) is (type(x) is type(y) and x == y)
    assert all(path == "$." + snake(key) for path, *_ in value_diffs)


_ITEMS_ORDER_FREE = parse_rules({"ignore_order": ["$.items"]})
_REORDERED_NOTE = "auto_list_key: $.items reordered (records matched by id)"


@given(st.lists(st.integers(0, 10**6), unique=True, max_size=40), st.randoms(), st.data())
def test_keyed_records_shuffled_are_one_reordered_and_one_insert_is_one_added(
    ids: list[int], rnd: random.Random, data: st.DataObject
) -> None:
    items = [{"id": i, "v": i % 7} for i in ids]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    order = [r["id"] for r in shuffled]
    reordered = [] if order == ids else [("$.items", "reordered", _head(ids), _head(order))]
    result = _cmp({"items": items}, {"items": shuffled})
    assert _diffs(result) == reordered  # one difference for the list, none per record
    assert result.notes == ((_REORDERED_NOTE,) if reordered else ())
    ordered = _cmp({"items": items}, {"items": shuffled}, _ITEMS_ORDER_FREE)
    assert (ordered.verdict, ordered.differences) == (Verdict.MATCH, ())

    new = {"id": data.draw(st.integers(0, 10**6).filter(lambda i: i not in ids)), "v": 0}
    added = (f"$.items[id={new['id']}]", "added", None, new)
    inserted = list(items)
    inserted.insert(data.draw(st.integers(0, len(items))), new)
    result = _cmp({"items": items}, {"items": inserted})
    assert (_diffs(result), result.notes) == ([added], ())  # same order: no REORDERED
    shuffled.insert(data.draw(st.integers(0, len(shuffled))), new)
    assert _diffs(_cmp({"items": items}, {"items": shuffled})) == [*reordered, added]


def test_keyed_list_is_a_dict_of_records() -> None:
    aligned = ALL_ON.aligner.align([{"id": 2}, {"id": 1}], [{"id": 1}, {"id": 2}])
    assert type(aligned.primary) is KeyedList
    assert list(aligned.primary) == ["[id=2]", "[id=1]"]
    assert plain(aligned.primary) == [{"id": 2}, {"id": 1}]


@given(
    st.lists(st.integers(0, 10**6), unique=True, min_size=1, max_size=60),
    st.data(),
    st.booleans(),
)
def test_lists_without_keys_one_insert_or_removal_is_one_difference(
    skus: list[int], data: st.DataObject, remove: bool
) -> None:
    lines = [{"sku": s, "qty": 1} for s in skus]
    other = list(lines)
    if remove:
        at = data.draw(st.integers(0, len(lines) - 1))
        del other[at]
        expected = [(f"$.lines[{at}]", Kind.REMOVED)]
    else:
        at = data.draw(st.integers(0, len(lines)))
        other.insert(at, {"sku": -1, "qty": 1})
        expected = [(f"$.lines[{at}]", Kind.ADDED)]
    result = _cmp({"lines": lines}, {"lines": other})
    assert [(d.path, d.kind) for d in result.differences] == expected


def test_lists_without_keys_pair_the_changed_items_they_line_up() -> None:
    lines = [{"sku": i, "qty": 1} for i in range(10)]
    other = [*lines[:3], {"sku": 3, "qty": 2}, *lines[4:8], *lines[9:]]
    result = _cmp({"lines": lines}, {"lines": other})
    assert _diffs(result) == [
        ("$.lines[3].qty", "value_changed", 1, 2),
        ("$.lines[8]", "removed", {"sku": 8, "qty": 1}, None),
    ]


_ORDER_FREE = parse_rules({"ignore_order": ["$.l"]})


@given(st.lists(api_values, max_size=8), st.randoms(use_true_random=False), st.data())
def test_order_free_lists_with_noise_still_match(
    items: list[Any], rnd: random.Random, data: st.DataObject
) -> None:
    other = data.draw(variants(data.draw(variants(items, "int_float")), "iso_instants"))
    rnd.shuffle(other)
    result = _cmp({"l": items}, {"l": other}, _ORDER_FREE)
    assert result.verdict is Verdict.MATCH, _diffs(result)


def test_bodies_over_the_diff_limit_are_not_aligned() -> None:
    rules = parse_rules({"max_body_bytes_for_diff": 5})
    result = _cmp({"a": 1}, {"a": 1.0}, rules)
    assert [d.path for d in result.differences] == ["$body"]
    assert result.notes == ("body over max_body_bytes_for_diff: compared by hash only",)
