"""shadow.config.loader: the TOML config file, per-endpoint rules and what may be copied."""

from __future__ import annotations

from pathlib import Path

import pytest

from comparators import DEFAULT_RULES
from shadow.config.loader import Config, load_config, parse_config, parse_methods
from shadow.errors import ConfigError

VALID = """
[compare]
ignore_paths = ["$..requestId"]

[[endpoints]]
route = "/api/analysis/{id}"
methods = ["GET"]
[endpoints.compare]
ignore_paths = ["$.createdAt"]

[[endpoints]]
route = "/api/start-analysis"
methods = ["POST"]
mirror_unsafe = true

[[endpoints]]
route = "/api/reports"
"""


def write(tmp_path: Path, text: str, name: str = "shadow.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def sources(rules: object, key: str) -> list[str]:
    return [p.source for p in getattr(rules, key)]


def test_load_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    cfg = load_config(path)
    assert cfg.source == path
    assert [e.pattern.template for e in cfg.endpoints] == [
        "/api/analysis/{id}",
        "/api/start-analysis",
        "/api/reports",
    ]
    assert cfg.endpoints[0].pattern.methods == frozenset({"GET"})
    assert cfg.endpoints[2].pattern.methods is None
    assert [e.mirror_unsafe for e in cfg.endpoints] == [False, True, False]
    assert sources(cfg.rules, "ignore_paths") == ["$..requestId"]
    assert cfg.matcher.endpoint("GET", "/api/analysis/3") == "GET /api/analysis/{id}"


def test_load_none_or_empty_gives_defaults() -> None:
    for value in (None, ""):
        cfg = load_config(value)
        assert cfg.endpoints == ()
        assert cfg.rules is DEFAULT_RULES


def test_rules_for_merges_endpoint_rules(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    merged = cfg.rules_for("GET", "/api/analysis/9")
    assert sources(merged, "ignore_paths") == ["$..requestId", "$.createdAt"]
    # cached: the same object each time
    assert cfg.rules_for("GET", "/api/analysis/10") is merged
    # another method, an endpoint without compare table, an unknown path: global rules
    assert cfg.rules_for("DELETE", "/api/analysis/9") is cfg.rules
    assert cfg.rules_for("GET", "/api/reports") is cfg.rules
    assert cfg.rules_for("GET", "/api/unknown") is cfg.rules
    # the global rules are not changed by merging
    assert sources(cfg.rules, "ignore_paths") == ["$..requestId"]


def test_rules_for_endpoint_override_of_scalar() -> None:
    cfg = parse_config(
        {
            "compare": {"compare_status": True, "tolerance": 0.5},
            "endpoints": [{"route": "/a", "compare": {"compare_status": False}}],
        }
    )
    assert cfg.rules_for("GET", "/a").compare_status is False
    assert cfg.rules_for("GET", "/a").tolerance == 0.5
    assert cfg.rules_for("GET", "/b").compare_status is True


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get", "head"])
def test_may_copy_safe_methods_always(method: str) -> None:
    assert Config().may_copy(method, "/anything", frozenset())


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_may_copy_unsafe_not_by_default(method: str) -> None:
    assert not Config().may_copy(method, "/anything", frozenset())


def test_may_copy_unsafe_allowed_globally() -> None:
    cfg = Config()
    assert cfg.may_copy("POST", "/x", frozenset({"POST"}))
    assert cfg.may_copy("post", "/x", frozenset({"POST"}))
    assert not cfg.may_copy("PUT", "/x", frozenset({"POST"}))
    assert cfg.may_copy("PUT", "/x", frozenset({"*"}))
    assert cfg.may_copy("DELETE", "/x", parse_methods("all"))


def test_may_copy_unsafe_per_endpoint(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.may_copy("POST", "/api/start-analysis", frozenset())
    # the endpoint's methods filter: PUT does not match that endpoint
    assert not cfg.may_copy("PUT", "/api/start-analysis", frozenset())
    # endpoints without mirror_unsafe
    assert not cfg.may_copy("DELETE", "/api/reports", frozenset())
    assert not cfg.may_copy("POST", "/api/process-results", frozenset())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", frozenset()),
        ("POST", frozenset({"POST"})),
        ("post, put ,", frozenset({"POST", "PUT"})),
        ("all", frozenset({"*"})),
        ("*", frozenset({"*"})),
        ("POST,*", frozenset({"POST", "*"})),
        (["delete", " patch "], frozenset({"DELETE", "PATCH"})),
    ],
)
def test_parse_methods(value: str | list[str], expected: frozenset[str]) -> None:
    assert parse_methods(value) == expected


@pytest.mark.parametrize("value", ["POST;PUT", "GE T", "P0ST", ["ok", "bad-one"]])
def test_parse_methods_rejects_non_methods(value: str | list[str]) -> None:
    with pytest.raises(ConfigError, match="not an HTTP method"):
        parse_methods(value)


BAD_FILES = [
    ("not toml", "route = [unclosed", "is not valid TOML"),
    ("unknown section", "[compair]\nx = 1\n", "unknown section 'compair'"),
    ("endpoints not a list", "[endpoints]\nroute = '/a'\n", "'endpoints' must be an array"),
    ("endpoint not a table", "endpoints = ['/a']\n", "endpoints[0] must be a table"),
    ("missing route", "[[endpoints]]\nmethods = ['GET']\n", "endpoints[0]: 'route'"),
    ("route not a string", "[[endpoints]]\nroute = 3\n", "endpoints[0]: 'route'"),
    (
        "bad methods",
        "[[endpoints]]\nroute = '/a'\n[[endpoints]]\nroute = '/b'\nmethods = 'GET'\n",
        "endpoints[1]: 'methods' must be a list of strings",
    ),
    (
        "bad method items",
        "[[endpoints]]\nroute = '/a'\nmethods = ['GET', 1]\n",
        "'methods' must be a list of strings",
    ),
    (
        "bad mirror_unsafe",
        "[[endpoints]]\nroute = '/a'\nmirror_unsafe = 'yes'\n",
        "'mirror_unsafe' must be true or false",
    ),
    ("unknown endpoint key", "[[endpoints]]\nroute = '/a'\nrout = 1\n", "unknown key 'rout'"),
    ("malformed route", "[[endpoints]]\nroute = '/a/{id'\n", "malformed"),
    ("route without slash", "[[endpoints]]\nroute = 'a'\n", "must start with '/'"),
    ("bad global rule", "[compare]\nignore_pathz = []\n", "[compare] unknown key 'ignore_pathz'"),
    ("bad global rule value", "[compare]\ntolerance = -1\n", "tolerance"),
    (
        "bad endpoint rule",
        "[[endpoints]]\nroute = '/a'\n[endpoints.compare]\nmax_diffs = 0\n",
        "endpoints[0]: compare.max_diffs",
    ),
    (
        "endpoint compare not a table",
        "[[endpoints]]\nroute = '/a'\ncompare = 3\n",
        "'compare' must be a table",
    ),
]


@pytest.mark.parametrize(
    ("text", "needle"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_bad_file_raises_one_line_config_error(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert needle in message
    assert path in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert path in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    # a directory cannot be read as a file
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_config(str(tmp_path))
    assert "\n" not in str(info.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value)


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline: unknown section 'x'$"):
        parse_config({"x": {}}, source="inline")


@pytest.mark.parametrize(
    ("accepted", "needle"),
    [
        ({"endpoint": "GET /a", "path": "$.x"}, "'reason'"),
        ({"endpoint": "GET /a", "path": "x", "reason": "r"}, "must start with '$'"),
        ({"endpoint": "GET /a", "path": "$.x", "reason": "r", "why": 1}, "unknown key 'why'"),
        ({"endpoint": "GET /a", "path": "$.x", "reason": "r", "kind": 3}, "'kind'"),
    ],
)
def test_bad_accepted_entries(accepted: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"accepted": [accepted]}, source="s.toml")
    assert "s.toml: accepted[0]" in str(err.value) and needle in str(err.value)


def test_accepted_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError, match=r"'accepted' must be an array of tables"):
        parse_config({"accepted": {"endpoint": "GET /a"}}, source="s.toml")


def test_accepted_reason_matches_exact_and_folded_paths() -> None:
    config = parse_config(
        {"accepted": [{"endpoint": "GET /api/*", "path": "$.items[*].ts", "reason": "ok"}]}
    )
    assert config.accepted_reason("GET /api/x", "$.items[3].ts", "value_changed") == "ok"
    assert config.accepted_reason("GET /api/x", "$.items[id=7].ts", "added") == "ok"
    assert config.accepted_reason("POST /api/x", "$.items[3].ts", "value_changed") is None
    assert config.accepted_reason("GET /api/x", "$.items[3].other", "value_changed") is None


def test_accepted_kind_must_be_a_known_kind() -> None:
    entry = {"endpoint": "GET /a", "path": "$.x", "reason": "r", "kind": "valu_changed"}
    with pytest.raises(ConfigError, match="'kind' must be one of value_changed"):
        parse_config({"accepted": [entry]})
    assert parse_config({"accepted": [{**entry, "kind": "value_changed"}]}).accepted[0].kind
