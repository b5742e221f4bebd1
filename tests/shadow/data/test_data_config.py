"""[data.tables.NAME] in a config (shadow.config.data), and how the command picks tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from comparators import parse_rules
from shadow.config.data import DataTable, parse_data
from shadow.config.loader import load_config, parse_config
from shadow.data.run import select_tables
from shadow.errors import ConfigError


def tables(section: dict[str, Any]) -> dict[str, DataTable]:
    return dict(parse_config({"data": {"tables": section}}, source="cfg.toml").data)


def refused(section: Any, *, whole: bool = False) -> str:
    raw = section if whole else {"tables": section}
    with pytest.raises(ConfigError) as caught:
        parse_config({"data": raw}, source="cfg.toml")
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_a_full_section() -> None:
    found = tables(
        {
            "analyses": {
                "old": "analyses",
                "new": "analysis",
                "key": ["id"],
                "rename": {"dataset_id": "dataset"},
                "ignore": ["updated_at"],
                "cast": {"created_at": "timestamp", "metrics": "json"},
                "old_sql": {"full_name": "first || ' ' || last"},
                "new_sql": {"total": "a + b"},
                "compare": {"tolerance": 0.01, "ignore_paths": ["$.note"]},
                "since": "updated_at",
                "min_age": 60,
                "columns": ["id", "name"],
            }
        }
    )
    t = found["analyses"]
    assert (t.name, t.old, t.new, t.key) == ("analyses", "analyses", "analysis", ("id",))
    assert t.rename == {"dataset_id": "dataset"}
    assert t.new_name("dataset_id") == "dataset"
    assert t.new_name("other") == "other"
    assert t.ignore == frozenset({"updated_at"})
    assert t.cast == {"created_at": "timestamp", "metrics": "json"}
    assert t.old_sql == {"full_name": "first || ' ' || last"}
    assert t.new_sql == {"total": "a + b"}
    assert t.since == "updated_at"
    assert t.min_age == 60.0 and isinstance(t.min_age, float)
    assert t.columns == ("id", "name")
    rules = t.rules(parse_rules({}))
    assert rules.tolerance == 0.01
    assert len(rules.ignore_paths) == 1


def test_defaults() -> None:
    t = tables({"insights": {}})["insights"]
    assert (t.old, t.new, t.key, t.since, t.min_age) == ("insights", "insights", (), None, None)
    base = parse_rules({"tolerance": 0.5})
    assert t.rules(base) is base  # no compare table: the [compare] rules as they are
    # new defaults to old, not to the section's name
    t = tables({"x": {"old": "legacy_x"}})["x"]
    assert (t.old, t.new) == ("legacy_x", "legacy_x")


def test_a_key_may_be_one_string_and_compare_merges_over_the_top_level_rules() -> None:
    config = parse_config(
        {"compare": {"tolerance": 0.5}, "data": {"tables": {"t": {"key": "id"}}}}, "cfg.toml"
    )
    t = config.data["t"]
    assert t.key == ("id",)
    assert t.rules(config.rules).tolerance == 0.5
    t2 = tables({"t": {"compare": {"masks": ["uuid"]}}})["t"]
    assert len(t2.rules(parse_rules({"tolerance": 0.5})).masks) == 1


def test_no_data_section() -> None:
    assert parse_config({}, "cfg.toml").data == {}
    assert parse_data(None, "cfg.toml", parse_rules({})) == {}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"t": {"keys": ["id"]}}, "[data.tables.t]: unknown key 'keys'"),
        ({"t": {"tolerance": 0.1}}, "[data.tables.t]: unknown key 'tolerance'"),
        ({"t": {"cast": {"c": "float"}}}, "cast c = 'float': not a kind"),
        ({"t": {"cast": {"c": "TEXT"}}}, "cast c = 'TEXT': not a kind"),
        ({"t": {"cast": {"c": 1}}}, "'cast' must be a table of strings"),
        ({"t": {"cast": ["c"]}}, "'cast' must be a table of strings"),
        ({"t": {"min_age": -1}}, "'min_age' must be a number of seconds"),
        ({"t": {"min_age": "60"}}, "'min_age' must be a number of seconds"),
        ({"t": {"min_age": True}}, "'min_age' must be a number of seconds"),
        ({"t": {"min_age": math.nan}}, "'min_age' must be a number of seconds"),
        ({"t": {"key": []}}, None),  # an empty key is allowed here, refused by the command
        ({"t": {"key": [1]}}, "'key' must be a list of column names"),
        ({"t": {"key": [""]}}, "'key' must be a list of column names"),
        ({"t": {"key": {"id": 1}}}, "'key' must be a list of column names"),
        ({"t": {"ignore": "x"}}, None),  # one name is a list of one
        ({"t": {"ignore": [None]}}, "'ignore' must be a list of column names"),
        ({"t": {"columns": 3}}, "'columns' must be a list of column names"),
        ({"t": {"rename": {"a": ""}}}, "'rename' must be a table of strings"),
        ({"t": {"rename": {"a": 2}}}, "'rename' must be a table of strings"),
        ({"t": {"old_sql": {"a": ""}}}, "'old_sql' must be a table of strings"),
        ({"t": {"new_sql": "a + b"}}, "'new_sql' must be a table of strings"),
        ({"t": {"old": ""}}, "'old' must be a non-empty string"),
        ({"t": {"new": 3}}, "'new' must be a non-empty string"),
        ({"t": {"since": ""}}, "'since' must be a non-empty string"),
        ({"t": {"compare": "strict"}}, "'compare' must be a table"),
        ({"t": {"compare": {"tolerance": "x"}}}, "[data.tables.t]: compare: "),
        ({"t": {"compare": {"no_such_rule": 1}}}, "[data.tables.t]: compare: "),
        ({"t": {"compare": {"masks": ["no_such_mask"]}}}, "[data.tables.t]: compare: "),
        ({"t": 3}, "[data.tables.t] must be a table"),
    ],
)
def test_bad_sections(section: dict[str, Any], message: str | None) -> None:
    if message is None:
        tables(section)
        return
    text = refused(section)
    assert text.startswith("cfg.toml: ")
    assert message in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"table": {}}, "[data] holds only [data.tables.NAME] sections"),
        ({"tables": {}, "other": 1}, "[data] holds only [data.tables.NAME] sections"),
        ({"tables": []}, "[data.tables] must hold [data.tables.NAME] sections"),
        ([], "[data] holds only [data.tables.NAME] sections"),
    ],
)
def test_bad_data_sections(raw: Any, message: str) -> None:
    assert message in refused(raw, whole=True)


def test_min_age_zero_is_allowed() -> None:
    assert tables({"t": {"min_age": 0}})["t"].min_age == 0.0


def test_infinite_or_huge_min_age_is_refused() -> None:
    # was accepted (inf >= 0), then OverflowError in timedelta(seconds=inf)
    assert "'min_age' must be a number of seconds" in refused({"t": {"min_age": math.inf}})
    assert "'min_age' must be a number of seconds" in refused({"t": {"min_age": 1e12}})


def test_the_example_config_parses(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    config = load_config(str(root / "examples" / "shadow.toml"))
    assert config.data["analyses"].key == ("id",)
    assert config.data["analyses"].rename == {"dataset_id": "dataset"}
    assert config.data["insights"].key == ("id",)


# --- select_tables: --table / --key / --since / --min-age over the sections --------------------


def test_select_every_section_by_default() -> None:
    config = parse_config({"data": {"tables": {"a": {"key": "id"}, "b": {"key": ["k1", "k2"]}}}})
    chosen = select_tables(config, [], [], None, None)
    assert [(t.name, t.key) for t in chosen] == [("a", ("id",)), ("b", ("k1", "k2"))]


def test_select_by_name_or_old_name_and_override() -> None:
    config = parse_config(
        {"data": {"tables": {"users": {"old": "legacy_users", "key": "id", "rename": {"a": "b"}}}}}
    )
    by_name = select_tables(config, ["users"], [], None, None)[0]
    by_old = select_tables(config, ["legacy_users:people"], ["uid"], "updated", 30)[0]
    assert (by_name.old, by_name.new, by_name.key) == ("legacy_users", "legacy_users", ("id",))
    assert (by_old.name, by_old.old, by_old.new) == ("users", "legacy_users", "people")
    assert by_old.key == ("uid",) and by_old.rename == {"a": "b"}
    assert (by_old.since, by_old.min_age) == ("updated", 30)
    plain = select_tables(parse_config({}), ["t:u"], ["id"], None, None)[0]
    assert (plain.name, plain.old, plain.new, plain.key) == ("t", "t", "u", ("id",))


@pytest.mark.parametrize(
    ("config", "specs", "key", "since", "min_age", "message"),
    [
        ({}, [], [], None, None, "no table to compare"),
        ({}, ["t"], [], None, None, "table t: no key"),
        ({}, ["t:"], ["id"], None, None, "--table 't:': expected OLD or OLD:NEW"),
        ({}, [":u"], ["id"], None, None, "expected OLD or OLD:NEW"),
        ({}, ["t"], ["id"], "updated_at", None, "--since COLUMN and --min-age SECONDS go together"),
        ({}, ["t"], ["id"], None, 60.0, "--since COLUMN and --min-age SECONDS go together"),
        ({"t": {"key": "id", "since": "u"}}, [], [], None, None, "go together"),
        ({"t": {"key": "id", "min_age": 5}}, [], [], None, None, "go together"),
        ({}, ["t", "t:u"], ["id"], None, None, "table t given twice"),
    ],
)
def test_select_refusals(
    config: dict[str, Any],
    specs: list[str],
    key: list[str],
    since: str | None,
    min_age: float | None,
    message: str,
) -> None:
    cfg = parse_config({"data": {"tables": config}} if config else {})
    with pytest.raises(ConfigError) as caught:
        select_tables(cfg, specs, key, since, min_age)
    assert message in str(caught.value)
