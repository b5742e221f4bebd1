"""Parsing, validating and merging `[compare]` tables."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from comparators import DEFAULT_RULES, RuleError, Rules, parse_rules


def _sources(patterns: tuple[Any, ...]) -> list[str]:
    return [p.source for p in patterns]


def test_defaults() -> None:
    rules = parse_rules({})
    assert rules == DEFAULT_RULES == Rules()
    assert rules.headers == ("content-type",)
    assert rules.compared_headers == ("content-type",)
    assert rules.compare_status is True
    assert rules.ignore_paths == rules.ignore_order == rules.masks == ()
    assert rules.tolerance == 0.0
    assert rules.max_diffs == 200
    assert rules.max_body_bytes_for_diff == 2_000_000
    assert not rules.normalizer  # nothing to normalize by default


def test_every_rules_field_is_a_config_key() -> None:
    """A field added to Rules but not to the parser could never be set from TOML."""
    names = [f.name for f in dataclasses.fields(Rules) if f.init]
    values = {f.name: getattr(DEFAULT_RULES, f.name) for f in dataclasses.fields(Rules) if f.init}
    raw = {
        **values,
        "ignore_paths": [],
        "ignore_order": [],
        "masks": [],
        "tolerances": {},
        "normalize": dataclasses.asdict(DEFAULT_RULES.normalize),
        "list_keys": {},
    }
    assert parse_rules({n: raw[n] for n in names}) == DEFAULT_RULES


@pytest.mark.parametrize(
    ("mapping", "field", "expected"),
    [
        ({"headers": ["Content-Type", "X-Version"]}, "headers", ("content-type", "x-version")),
        ({"headers": ["etag", "ETag"]}, "headers", ("etag",)),
        ({"ignore_headers": ["Content-Type"]}, "compared_headers", ()),
        ({"compare_status": False}, "compare_status", False),
        ({"tolerance": 1}, "tolerance", 1.0),
        ({"tolerance": 0.5}, "tolerance", 0.5),
        ({"max_diffs": 5}, "max_diffs", 5),
        ({"max_body_bytes_for_diff": 0}, "max_body_bytes_for_diff", 0),
    ],
)
def test_scalar_and_header_keys(mapping: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(parse_rules(mapping), field) == expected


def test_pattern_keys_and_masks() -> None:
    rules = parse_rules(
        {
            "ignore_paths": ["$..request_id", "meta.trace"],
            "ignore_order": ["$", "$.tags"],
            "tolerances": {"$.price": 0.01},
            "masks": ["uuid", {"name": "reqid", "regex": "req-[0-9a-f]+", "paths": ["$.id"]}],
        }
    )
    assert _sources(rules.ignore_paths) == ["$..request_id", "meta.trace"]
    assert _sources(rules.ignore_order) == ["$", "$.tags"]
    assert [(p.source, t) for p, t in rules.tolerances] == [("$.price", 0.01)]
    assert [m.name for m in rules.masks] == ["uuid", "reqid"]
    assert rules.masks[1].replace == "<reqid>"
    assert _sources(rules.masks[1].paths) == ["$.id"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"ignore_path": ["$.a"]},
            "unknown key 'ignore_path' in [compare]; did you mean 'ignore_paths'",
        ),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"headers": "content-type"}, "compare.headers must be a list"),
        ({"headers": [1]}, "compare.headers[0] must be a header name"),
        ({"headers": [" "]}, "compare.headers[0] must be a header name"),
        ({"ignore_headers": [None]}, "compare.ignore_headers[0]"),
        ({"compare_status": "yes"}, "compare.compare_status must be true or false"),
        ({"compare_status": 1}, "compare.compare_status must be true or false"),
        ({"ignore_paths": "$.a"}, "compare.ignore_paths must be a list"),
        ({"ignore_paths": ["$.a["]}, "compare.ignore_paths[0] '$.a[': bad path pattern"),
        ({"ignore_paths": [3]}, "compare.ignore_paths[0] must be a path pattern string"),
        ({"ignore_paths": ["$"]}, "would ignore the whole body"),
        ({"ignore_order": ["$.a", "$.."]}, "compare.ignore_order[1]"),
        ({"tolerance": -1}, "compare.tolerance must be a finite number >= 0"),
        ({"tolerance": True}, "compare.tolerance must be a number"),
        ({"tolerance": "0.1"}, "compare.tolerance must be a number"),
        ({"tolerance": float("inf")}, "compare.tolerance must be a finite number"),
        ({"tolerances": [0.1]}, "compare.tolerances must be a table"),
        ({"tolerances": {"$.a": -0.1}}, "compare.tolerances['$.a'] must be a finite number"),
        ({"tolerances": {"$.a[": 0.1}}, "compare.tolerances key '$.a[': bad path pattern"),
        ({"max_diffs": 0}, "compare.max_diffs must be an integer >= 1"),
        ({"max_diffs": 2.5}, "compare.max_diffs must be an integer >= 1"),
        ({"max_diffs": True}, "compare.max_diffs must be an integer >= 1"),
        (
            {"max_body_bytes_for_diff": -1},
            "compare.max_body_bytes_for_diff must be an integer >= 0",
        ),
        ({"masks": "uuid"}, "compare.masks must be a list"),
        ({"masks": ["guid"]}, "compare.masks[0]: unknown builtin mask 'guid' (known: hex_id"),
        ({"masks": [1]}, "compare.masks[0] must be a builtin name or a table"),
        ({"masks": [{"regex": "x"}]}, "compare.masks[0]: missing key 'name'"),
        ({"masks": [{"name": "x"}]}, "compare.masks[0]: missing key 'regex'"),
        ({"masks": [{"name": "x", "regex": "a", "flags": "i"}]}, "unknown key 'flags'"),
        ({"masks": [{"name": "x", "regex": "("}]}, "compare.masks[0].regex '(': bad regex"),
        ({"masks": [{"name": "x", "regex": "a*"}]}, "matches the empty string"),
        ({"masks": [{"name": 1, "regex": "a"}]}, "compare.masks[0].name must be a string"),
        ({"masks": [{"name": "x", "regex": "x", "replace": "xx"}]}, "matched by its own regex"),
        ({"masks": [{"name": "n", "regex": "<n>"}]}, "matched by its own regex"),
        (
            {"masks": [{"name": "x", "regex": "a", "paths": "$.a"}]},
            "compare.masks[0].paths must be",
        ),
        ({"masks": [{"name": "x", "regex": "a", "paths": ["$["]}]}, "compare.masks[0].paths[0]"),
    ],
)
def test_bad_input_raises_one_line_rule_error(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(mapping)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_mapping_raises() -> None:
    with pytest.raises(RuleError, match=r"\[compare\] must be a table"):
        parse_rules(["headers"])  # type: ignore[arg-type]


def test_builtin_mask_restricted_to_paths() -> None:
    (mask,) = parse_rules({"masks": [{"name": "uuid", "paths": ["$.id"]}]}).masks
    assert mask.replace == "<uuid>"
    assert mask.apply("x 123e4567-e89b-12d3-a456-426614174000")[1] == 1


def test_merged_extends_lists_and_overrides_scalars() -> None:
    base = parse_rules(
        {
            "headers": ["content-type", "etag"],
            "ignore_paths": ["$.a"],
            "ignore_order": ["$.x"],
            "ignore_headers": ["etag"],
            "masks": ["uuid"],
            "tolerance": 0.1,
            "tolerances": {"$.p": 1.0, "$.q": 2.0},
            "max_diffs": 10,
        }
    )
    merged = base.merged(
        {
            "headers": ["x-version"],
            "ignore_paths": ["$.b", "$.a"],
            "ignore_order": ["$.y"],
            "ignore_headers": ["x-other"],
            "masks": ["hex_id"],
            "tolerance": 0.5,
            "tolerances": {"$.q": 3.0, "$.r": 4.0},
            "compare_status": False,
        }
    )
    assert merged.headers == ("x-version",)  # scalar-like: replaced
    assert _sources(merged.ignore_paths) == ["$.a", "$.b"]  # extended, no duplicates
    assert _sources(merged.ignore_order) == ["$.x", "$.y"]
    assert merged.ignore_headers == ("etag", "x-other")
    assert [m.name for m in merged.masks] == ["uuid", "hex_id"]
    assert merged.tolerance == 0.5
    assert [(p.source, t) for p, t in merged.tolerances] == [
        ("$.p", 1.0),
        ("$.q", 3.0),
        ("$.r", 4.0),
    ]
    assert merged.compare_status is False
    assert merged.max_diffs == 10  # not given: kept
    # The base is untouched and the new normalizer knows the new paths.
    assert _sources(base.ignore_paths) == ["$.a"]
    assert merged.normalizer.json({"a": 1, "b": 2, "c": 3}) == {"c": 3}
    assert base.normalizer.json({"a": 1, "b": 2, "c": 3}) == {"b": 2, "c": 3}


def test_merged_with_empty_mapping_is_equal() -> None:
    base = parse_rules({"ignore_paths": ["$.a"], "masks": ["uuid"]})
    assert base.merged({}) == base


def test_merged_validates() -> None:
    with pytest.raises(RuleError, match=r"compare\.max_diffs"):
        DEFAULT_RULES.merged({"max_diffs": "many"})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("total",), 0.1),  # no pattern: the global tolerance
        (("price",), 0.5),  # $.price and $..price both match: the later entry wins
        (("items", 3, "qty"), 2.0),  # below $.items[*]
        (("items", 3, "price"), 0.5),  # $.items[*] and $..price: the later wins
        (("stats", "a", "b"), 0.0),  # a pattern covers its whole subtree
    ],
)
def test_tolerance_at(path: tuple[str | int, ...], expected: float) -> None:
    rules = parse_rules(
        {
            "tolerance": 0.1,
            "tolerances": {"$.price": 0.01, "$.items[*]": 2.0, "$..price": 0.5, "$.stats": 0},
        }
    )
    assert rules.tolerance_at(path) == expected


def test_rules_are_hashable_and_survive_pickling() -> None:
    """Callers may key caches on Rules or send them to worker processes."""
    table = {
        "ignore_paths": ["$.items[*].x", "$..rid"],
        "masks": ["uuid"],
        "tolerances": {"$.*": 1},
    }
    rules = parse_rules(table)
    assert hash(rules) == hash(parse_rules(table))
    clone = pickle.loads(pickle.dumps(rules))
    assert clone == rules
    assert clone.normalizer.json({"items": [{"x": 1, "y": 2}], "rid": 3}) == {"items": [{"y": 2}]}
    assert clone.tolerance_at(("anything",)) == 1.0


def test_normalize_defaults_and_switches() -> None:
    n = DEFAULT_RULES.normalize
    assert (n.int_float, n.iso_instants, n.media_type_params, n.header_name_case) == (True,) * 4
    assert n.auto_list_key is True
    assert (n.null_absent, n.key_case) == (False, False)
    rules = parse_rules({"normalize": {"null_absent": True, "int_float": False}})
    assert rules.normalize.null_absent is True and rules.normalize.int_float is False
    assert rules.normalize.iso_instants is True  # not named: the default


def test_list_keys() -> None:
    rules = parse_rules({"list_keys": {"$.items": "id", "$..reports": "code"}})
    assert [(p.source, f) for p, f in rules.list_keys] == [
        ("$.items", "id"),
        ("$..reports", "code"),
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"normalize": True}, "compare.normalize must be a table of name = true/false"),
        (
            {"normalize": {"int_floats": True}},
            "unknown key 'int_floats' in [compare.normalize]; did you mean 'int_float'?",
        ),
        ({"normalize": {"bogus": True}}, "(known: int_float, iso_instants, null_absent"),
        ({"normalize": {"key_case": "yes"}}, "compare.normalize.key_case must be true or false"),
        ({"normalize": {"key_case": 1}}, "compare.normalize.key_case must be true or false"),
        ({"list_keys": ["$.items"]}, "compare.list_keys must be a table of path pattern = key"),
        ({"list_keys": {"$.items": 1}}, "compare.list_keys['$.items'] must be a key field name"),
        ({"list_keys": {"$.items": ""}}, "compare.list_keys['$.items'] must be a key field name"),
        ({"list_keys": {"$.a[": "id"}}, "compare.list_keys key '$.a[': bad path pattern"),
        ({"list_key": {}}, "did you mean 'list_keys'"),
    ],
)
def test_bad_migration_keys(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(mapping)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_merged_overrides_only_the_named_switches_and_merges_list_keys() -> None:
    base = parse_rules(
        {
            "normalize": {"null_absent": True, "int_float": False},
            "list_keys": {"$.a": "id", "$.b": "code"},
        }
    )
    merged = base.merged({"normalize": {"int_float": True}, "list_keys": {"$.b": "sku"}})
    assert merged.normalize.null_absent is True  # kept from the global table
    assert merged.normalize.int_float is True
    assert [(p.source, f) for p, f in merged.list_keys] == [("$.a", "id"), ("$.b", "sku")]
    assert base.normalize.int_float is False  # the base is untouched
    assert base.merged({}) == base
    assert hash(merged) != hash(base)


def test_rules_with_migration_keys_survive_pickling() -> None:
    rules = parse_rules({"normalize": {"key_case": True}, "list_keys": {"$.r": "code"}})
    clone = pickle.loads(pickle.dumps(rules))
    assert clone == rules
    aligned = clone.aligner.align({"r": [{"code": "a"}]}, {"r": [{"code": "a", "n": 1}]})
    assert list(aligned.primary["r"]) == ['[code="a"]']
