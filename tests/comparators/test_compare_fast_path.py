"""The fast paths of compare() give what the reference implementation gives, exactly.

`compare(..., fast=False)` is the reference: every step on both whole bodies.
The default skips work (one parse for equal bytes, a walk of only what differs);
these tests hold both to the same `Comparison`, compared by `repr` too, so that
`1` vs `1.0` vs `True`, `-0.0` vs `0.0` and dict key orders count.
"""

from __future__ import annotations

import copy
import gzip
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from comparators_strategies import api_values, json_values
from corpus import CASES, RULE_SETS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comparators import (
    Comparison,
    Conversation,
    Frame,
    Kind,
    Payload,
    Rules,
    Verdict,
    _nesting,
    compare,
    parse_rules,
)
from comparators._deep import prune_equal
from comparators._skeleton import align_skeleton, keyable, prune_differing
from comparators.align import canonical_aligned
from comparators.align import keyable as reference_keyable
from comparators.canonical import canonical_json, same_canonical
from comparators.envelope import encode
from comparators.paths import KeyIndex, SeqIndex

JSON = (("content-type", "application/json"),)

RULES: dict[str, dict[str, Any]] = {
    "default": {},
    "paths": {
        "ignore_paths": ["$..requestId", "$.meta.trace", "$.items[*].note"],
        "masks": ["iso_timestamp", "uuid"],
        "ignore_order": ["$..tags", "$.items"],
        "list_keys": {"$..lines": "sku", "$.records": "code"},
    },
    "all off": {
        "normalize": {
            "int_float": False,
            "iso_instants": False,
            "null_absent": False,
            "key_case": False,
            "auto_list_key": False,
            "media_type_params": False,
            "header_name_case": False,
        },
    },
    "opt-ins": {"normalize": {"null_absent": True, "key_case": True}},
    "opt-ins, no auto keys": {
        "normalize": {"null_absent": True, "key_case": True, "auto_list_key": False},
        "list_keys": {"$..items": "id"},
    },
    "no int_float, instants": {"normalize": {"int_float": False, "iso_instants": False}},
    "tolerance": {"tolerance": 0.5, "tolerances": {"$..price": 2.0}},
    "small max_diffs": {"max_diffs": 2},
    "tiny budget": {"max_diffs": 1, "normalize": {"key_case": True}},
    "too big to diff": {"max_body_bytes_for_diff": 60},
}
PARSED: dict[str, Rules] = {name: parse_rules(table) for name, table in RULES.items()}


def both(primary: Payload, candidate: Payload, rules: Rules) -> Comparison:
    """compare() both ways; asserts they agree exactly and returns the result."""
    fast = compare(primary, candidate, rules)
    reference = compare(primary, candidate, rules, fast=False)
    assert fast == reference
    assert repr(fast) == repr(reference)  # types of values and key orders too
    return fast


def _json(value: Any, headers: tuple[tuple[str, str], ...] = JSON) -> Payload:
    return Payload(200, headers, orjson.dumps(value))


def _shape(value: Any) -> Any:
    """A value with the types of everything spelled out (keys' attributes included)."""
    if isinstance(value, dict):
        return (type(value).__name__, [(_key(k), _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ["list", *map(_shape, value)]
    return repr(value)


def _same_tree(a: Any, b: Any) -> bool:
    """Strict equality of two parsed JSON values of any depth (no recursion)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif repr(x) != repr(y):
            return False
    return True


def _key(key: Any) -> Any:
    if isinstance(key, KeyIndex):
        return ("key", key.field, repr(key.value), key.order, str(key))
    if isinstance(key, SeqIndex):
        return ("seq", key.position, str(key))
    return repr(key)


# --- documents -----------------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
_SPELLINGS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%S.000Z",
)


def instant(seconds: int, spelling: int = 0) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime(_SPELLINGS[spelling % len(_SPELLINGS)])


_keys = st.sampled_from(
    [
        *("id", "name", "createdAt", "created_at", "price", "tags", "note", "requestId", "x"),
        *("items", "lines", "records"),
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers(-3, 3).map(float)
    | st.sampled_from([-0.0, 0.0, 0.5, 1.5, 2**53, 1e16])
    | st.integers(0, 5).map(lambda s: instant(s))
    | st.sampled_from(["a", "b", "", "1", "2024-05-01", "7f3c-uuid"])
    | st.just("123e4567-e89b-12d3-a456-426614174000")
)


def _records(children: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Lists of objects with unique ids (ints or strings)."""
    return st.tuples(
        st.lists(st.dictionaries(_keys.filter(lambda k: k != "id"), children, max_size=3)),
        st.booleans(),
    ).map(
        lambda t: [
            {"id": f"r{i}" if t[1] else i, **item, "sku": f"s{i}", "code": i}
            for i, item in enumerate(t[0])
        ]
    )


_trees: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(_keys, children, max_size=5)
        | _records(children)
    ),
    max_leaves=30,
)
# Also API-shaped roots: lists of records (matched by id or by a list_keys field).
documents: st.SearchStrategy[Any] = _trees | st.fixed_dictionaries(
    {"items": _records(_scalars), "meta": st.dictionaries(_keys, _scalars, max_size=3)},
    optional={"lines": _records(_scalars), "records": _records(_trees)},
)


def _snake(key: str) -> str:
    return {"createdAt": "created_at", "requestId": "request_id"}.get(key, key)


def mutate(value: Any, rnd: random.Random, rate: float) -> Any:
    """A copy of `value` with some of what a migration changes changed (or not)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            roll = rnd.random()
            if roll < rate / 4:
                continue  # removed
            if roll < rate / 2:
                key = _snake(key) if rnd.random() < 0.7 else key + "X"
            out[key] = mutate(item, rnd, rate)
        if rnd.random() < rate / 3:
            out["added" if rnd.random() < 0.5 else "middleName"] = None
        if rnd.random() < rate / 4:
            out = dict(reversed(list(out.items())))
        return out
    if isinstance(value, list):
        items = [mutate(item, rnd, rate) for item in value]
        roll = rnd.random()
        if roll < rate / 3:
            rnd.shuffle(items)
        elif roll < rate / 2 and items:
            del items[rnd.randrange(len(items))]
        elif roll < 2 * rate / 3:
            items.insert(rnd.randrange(len(items) + 1), copy.deepcopy(rnd.choice(items or [1])))
        return items
    if rnd.random() >= rate:
        return value
    if type(value) is int:
        return rnd.choice([float(value), value + 1, value is not None and bool(value), str(value)])
    if type(value) is float:
        return rnd.choice([int(value) if value.is_integer() else value + 1, -value, value + 0.25])
    if type(value) is bool:
        return rnd.choice([int(value), not value])
    if isinstance(value, str) and value.startswith("2024-05-01T"):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        seconds = int((moment - T0).total_seconds())
        return instant(seconds + rnd.choice([0, 0, 1]), rnd.randrange(3))
    return rnd.choice([None, "changed", 0])


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents,
    st.randoms(use_true_random=False),
    st.sampled_from([0.0, 0.05, 0.2, 0.5]),
    st.sampled_from(sorted(RULES)),
)
def test_fast_and_reference_agree_on_mutated_documents(
    doc: Any, rnd: random.Random, rate: float, rules_name: str
) -> None:
    other = mutate(doc, rnd, rate)
    both(_json(doc), _json(other), PARSED[rules_name])
    both(_json(other), _json(doc), PARSED[rules_name])


@settings(max_examples=100, deadline=None)
@given(api_values, api_values, st.sampled_from(sorted(RULES)))
def test_fast_and_reference_agree_on_unrelated_documents(a: Any, b: Any, name: str) -> None:
    both(_json(a), _json(b), PARSED[name])
    both(_json(a), _json(a), PARSED[name])


@settings(max_examples=100, deadline=None)
@given(json_values, json_values)
def test_fast_and_reference_agree_on_any_json(a: Any, b: Any) -> None:
    for rules in (PARSED["default"], PARSED["all off"], PARSED["opt-ins"]):
        both(_json(a), _json(b), rules)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 400),
    st.integers(0, 5),
    st.randoms(use_true_random=False),
    st.sampled_from(sorted(RULES)),
    st.booleans(),
)
def test_fast_and_reference_agree_on_big_lists(
    n: int, changes: int, rnd: random.Random, name: str, shuffled: bool
) -> None:
    """Long lists of records: a few fields changed, records added, removed or moved."""
    records = [
        {
            "id": i,
            "name": f"item {i}",
            "price": i * 1.5,
            "createdAt": instant(i),
            "tags": ["a", "b"],
        }
        for i in range(n)
    ]
    other = copy.deepcopy(records)
    for _ in range(changes):
        if not other:
            break
        what = rnd.randrange(6)
        k = rnd.randrange(len(other))
        if what == 0:
            other[k]["price"] = other[k].get("price", 0) + 1
        elif what == 1:
            other[k]["createdAt"] = instant(k, 1)
        elif what == 2:
            del other[k]
        elif what == 3:
            other.insert(k, {"id": n + k, "name": "new"})
        elif what == 4:
            other[k]["price"] = float(int(other[k].get("price", 1)))
        else:
            other[k]["tags"] = ["b", "a"]
    if shuffled:
        rnd.shuffle(other)
    # Keyed by id, and the same without ids (lined up by position or with difflib).
    both(_json({"items": records}), _json({"items": other}), PARSED[name])
    strip = [{k: v for k, v in r.items() if k != "id"} for r in records]
    strip_b = [{k: v for k, v in r.items() if k != "id"} for r in other]
    both(_json({"lines": strip}), _json({"lines": strip_b}), PARSED[name])


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_prune_differing_is_prune_equal(a: Any, b: Any) -> None:
    for x, y in ((a, b), (a, copy.deepcopy(a)), (a, orjson.loads(orjson.dumps(a)))):
        assert _shape(prune_differing(x, y)) == _shape(prune_equal(x, y))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.randoms(use_true_random=False), st.sampled_from(sorted(RULES)))
def test_align_skeleton_is_prune_equal_of_align(doc: Any, rnd: random.Random, name: str) -> None:
    other = mutate(doc, rnd, 0.3)
    aligner = PARSED[name].aligner
    if not aligner or canonical_json(doc) == canonical_json(other):
        return
    aligned = aligner.align(doc, other)
    skeleton = align_skeleton(aligner, doc, other)
    assert _shape(skeleton[:3]) == _shape(prune_equal(aligned.primary, aligned.candidate))
    assert skeleton.renames == aligned.renames and skeleton.notes == aligned.notes
    if canonical_aligned(aligned.primary) == canonical_aligned(aligned.candidate):
        assert skeleton.equal


@given(st.lists(json_values, max_size=6), st.lists(json_values, max_size=6))
def test_same_canonical_is_canonical_equality(xs: list[Any], ys: list[Any]) -> None:
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    expected = [canonical_json(x) == canonical_json(y) for x, y in zip(xs, ys, strict=True)]
    assert same_canonical(xs, ys) == expected
    assert same_canonical(xs, xs) == [True] * n


@given(st.lists(api_values | st.dictionaries(_keys, _scalars, max_size=3), max_size=6))
def test_keyable_is_the_reference_keyable(items: list[Any]) -> None:
    for field in ("id", "name", "sku"):
        assert keyable(items, field) == reference_keyable(items, field)


def _ws(messages: list[Any]) -> Payload:
    frames = []
    for value in messages:
        text = orjson.dumps(value).decode()
        frames.append(Frame("server", 0.0, "text", text, len(text.encode())))
    conversation = Conversation("websocket", tuple(frames), close_code=1000)
    return Payload(101, (), encode(conversation), stream="websocket")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(documents, max_size=4),
    st.randoms(use_true_random=False),
    st.sampled_from(["default", "opt-ins", "paths", "small max_diffs"]),
)
def test_conversations_agree(messages: list[Any], rnd: random.Random, name: str) -> None:
    """Each message of a conversation is compared like a body: the same there."""
    others = [mutate(m, rnd, 0.3) for m in messages]
    both(_ws(messages), _ws(others), PARSED[name])
    both(_ws(messages), _ws(messages), PARSED[name])


_PAD = " " * 40_000  # past the size where brackets are counted: parsed wrapped instead


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "[1]",
        "1],[2",
        "1]],[[2",
        "[1],[2]",
        '{"a": 1}, {"b": 2}',
        "[[1]]]",
        "[",
        "",
        "1 2",
        '"x"',
        "\ufeff[1]",
        "[" * 254 + "]" * 254,
        "[" * 255 + "]" * 255,
        '{"a":' * 254 + "1" + "}" * 254,
        '{"a":' * 255 + "1" + "}" * 255,
        "[" * 1024 + "]" * 1024,
        "[" * 1025 + "]" * 1025,
    ],
)
@pytest.mark.parametrize("pad", ["", _PAD])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_nesting_parse_is_orjson_loads(text: str, pad: str, as_bytes: bool) -> None:
    src: str | bytes = pad + text + pad
    if as_bytes:
        src = src.encode()
    try:
        expected = orjson.loads(src)
    except orjson.JSONDecodeError as exc:
        with pytest.raises(orjson.JSONDecodeError) as raised:
            _nesting.parse(src)
        assert str(raised.value) == str(exc)
        return
    value, shallow = _nesting.parse(src)
    assert _same_tree(value, expected)
    if shallow:
        orjson.dumps(value)  # known shallow: it can be written
    elif pad:
        with pytest.raises(orjson.JSONEncodeError):  # big and not shallow: too deep
            orjson.dumps(value)


def test_nesting_limits_are_orjsons() -> None:
    """Measured at import: 254 written and 1024 read with orjson 3.x."""
    write, read = _nesting.WRITE_LIMIT, _nesting.READ_LIMIT
    assert 0 < write < read
    orjson.dumps(orjson.loads("[" * write + "]" * write))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads("[" * (write + 1) + "]" * (write + 1)))
    orjson.loads("[" * read + "]" * read)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads("[" * (read + 1) + "]" * (read + 1))


@pytest.mark.parametrize("depth", [254, 255])
def test_big_deep_bodies_as_the_reference(depth: int) -> None:
    """Big enough to be parsed wrapped (`_nesting`): deep or not, the reference's result."""
    deep = ("[" * depth + _PAD + "1" + "]" * depth).encode()
    other = ("[" * depth + _PAD + "2" + "]" * depth).encode()
    for rules in (PARSED["default"], PARSED["paths"], PARSED["all off"]):
        both(Payload(200, JSON, deep), Payload(200, JSON, bytes(bytearray(deep))), rules)
        both(Payload(200, JSON, deep), _json({"a": [_PAD]}), rules)
    # deepdiff walks all the way down to the differing leaf (slow when deep): once.
    both(Payload(200, JSON, deep), Payload(200, JSON, other), PARSED["default"])


# --- the labelled corpus -------------------------------------------------------------------


@pytest.mark.parametrize("rules_name", [*RULE_SETS, *RULES])
def test_corpus_fast_and_reference_agree(rules_name: str) -> None:
    rules = parse_rules(RULE_SETS[rules_name]) if rules_name in RULE_SETS else PARSED[rules_name]
    for case in CASES:
        both(case.primary, case.candidate, rules)
        both(case.candidate, case.primary, rules)
        both(case.primary, Payload(200, case.primary.headers, bytes(case.primary.body)), rules)


# --- explicit cases ------------------------------------------------------------------------


def big_document(n: int = 5000) -> dict[str, Any]:
    """~1 MB for 5000 records."""
    rnd = random.Random(1)
    return {
        "meta": {"page": 1, "total": n, "generated": "2024-01-01T00:00:00Z"},
        "items": [
            {
                "id": i,
                "name": f"item-{i}",
                "price": rnd.random() * 100,
                "tags": ["a", "b", str(i % 7)],
                "owner": {"id": i % 50, "email": f"u{i % 50}@x.io", "active": bool(i % 2)},
                "created_at": f"2024-01-01T00:00:{i % 60:02d}Z",
            }
            for i in range(n)
        ],
    }


def test_a_1mb_pair_with_one_differing_field() -> None:
    doc = big_document()
    other = copy.deepcopy(doc)
    other["items"][2500]["owner"]["email"] = "changed@x.io"
    a, b = _json(doc), _json(other)
    assert len(a.body) > 800_000
    result = both(a, b, PARSED["default"])
    assert [(d.path, d.kind) for d in result.differences] == [
        ("$.items[id=2500].owner.email", Kind.VALUE_CHANGED)
    ]
    both(a, b, PARSED["all off"])
    both(a, b, PARSED["opt-ins"])


def test_a_1mb_pair_with_many_small_differences() -> None:
    doc = big_document(2000)
    other = copy.deepcopy(doc)
    for record in other["items"][::7]:
        record["price"] = round(record["price"])  # an int on some, a changed value on most
    other["items"][10]["created_at"] = "2024-01-01T00:00:10+00:00"  # the same instant
    other["items"].append({"id": -1})
    other["items"][3], other["items"][4] = other["items"][4], other["items"][3]
    for name in ("default", "small max_diffs", "tolerance", "all off", "opt-ins"):
        both(_json(doc), _json(other), PARSED[name])


def test_equal_1mb_bodies_in_distinct_bytes_objects() -> None:
    body = orjson.dumps(big_document())
    a, b = Payload(200, JSON, body), Payload(200, JSON, bytes(bytearray(body)))
    assert a.body is not b.body
    result = both(a, b, PARSED["default"])
    assert result.verdict is Verdict.MATCH and result.body_kind == "json" and not result.notes
    notes = both(a, b, PARSED["paths"]).notes
    assert "masked 10002 iso_timestamp values" in notes  # 5001 per side, as the reference


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


@pytest.mark.parametrize("depth", [1, 200, 254, 255, 300, 900])
def test_deep_nesting_as_the_reference(depth: int) -> None:
    """orjson writes 254 levels at most, orjson reads 1024, Python recurses ~1000 deep."""
    deep = Payload(200, JSON, b"[" * depth + b"1" + b"]" * depth)
    for rules in (PARSED["default"], PARSED["all off"], PARSED["paths"]):
        both(deep, Payload(200, JSON, bytes(bytearray(deep.body))), rules)
        both(deep, _json(_nested(min(depth, 250))), rules)
    # The differing leaf at the bottom: deepdiff walks all the way down (slow when deep).
    deep2 = Payload(200, JSON, b"[" * depth + b"2" + b"]" * depth)
    both(deep, deep2, PARSED["default"])


def test_equal_bytes_under_other_decoding_headers() -> None:
    body = '{"name": "café"}'.encode("latin-1")
    latin = (("content-type", "application/json; charset=latin-1"),)
    utf8 = (("content-type", "application/json"),)
    for headers in ((latin, utf8), (utf8, latin), (latin, latin)):
        both(Payload(200, headers[0], body), Payload(200, headers[1], body), PARSED["default"])
    text = (("content-type", "text/plain"),)
    both(Payload(200, JSON, b'{"a": 1}'), Payload(200, text, b'{"a": 1}'), PARSED["default"])
    raw = b'{"a": [1, 2]}'
    zipped = (*JSON, ("content-encoding", "gzip"))
    both(Payload(200, JSON, raw), Payload(200, zipped, gzip.compress(raw)), PARSED["default"])
    both(Payload(200, zipped, raw), Payload(200, zipped, raw), PARSED["default"])  # corrupt


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"a": 1', b"\x00\x01binary", b'"2024-05-01T10:00:00Z"', b"[]", b"1"],
)
@pytest.mark.parametrize("headers", [JSON, (("content-type", "text/plain"),), ()])
def test_equal_bodies_of_every_kind(body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
    for rules in PARSED.values():
        both(Payload(200, headers, body), Payload(200, headers, bytes(bytearray(body))), rules)


def test_values_equal_in_python_but_not_strictly() -> None:
    pairs = [
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1}, {"a": True}),
        ({"a": [0.0]}, {"a": [-0.0]}),
        ([{"id": 1, "v": 1}], [{"id": 1, "v": 1.0}]),
        ({"n": {"x": 0}}, {"n": {"x": False}}),
        (-0.0, 0.0),
        ([1, 2.0, True], [1.0, 2, 1]),
    ]
    for a, b in pairs:
        for rules in PARSED.values():
            both(_json(a), _json(b), rules)


def test_deepdiff_budget_runs_out_as_in_the_reference() -> None:
    a = {"items": [{"id": i, "v": i} for i in range(3000)], "n": list(range(3000))}
    b = {"items": [{"id": i, "v": -i} for i in range(3000)], "n": list(range(1, 3001))}
    result = both(_json(a), _json(b), PARSED["small max_diffs"])
    assert result.truncated
    assert "deepdiff stopped on its work budget: differences may be missing" in result.notes
    both(_json(a), _json(b), PARSED["default"])


def test_headers_fast_path_as_the_reference() -> None:
    body = b'{"a": 1}'
    variants = [
        JSON,
        (("Content-Type", "application/json; charset=utf-8"), ("ETag", "1")),
        (("content-type", "application/json"), ("etag", "1"), ("cache-control", "no-store")),
        (("content-type", "application/json"), ("etag", "2")),
    ]
    tables = [{}, {"headers": ["content-type", "etag", "cache-control"]}]
    tables.append({**tables[1], "normalize": {"header_name_case": False}})
    tables.append({**tables[1], "normalize": {"media_type_params": False}})
    for table in tables:
        rules = parse_rules(table)
        for ha in variants:
            for hb in variants:
                both(Payload(200, ha, body), Payload(201, hb, body), rules)
