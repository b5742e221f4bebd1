"""shadow.review.accept: appending accepted differences to the config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from shadow.errors import ConfigError
from shadow.review.accept import accept_difference

# --- accept_difference -------------------------------------------------------------------


EXISTING = """# shadow config
[compare]
ignore_paths = ["$..request_id"]  # keep me

[[endpoints]]
route = "/api/analysis/{id}"
"""


def test_accept_appends_and_keeps_existing_text(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_text(EXISTING, encoding="utf-8")
    added = accept_difference(
        str(cfg), "GET /api/analysis/{id}", "$.createdAt", "ms precision dropped", "value_changed"
    )
    text = cfg.read_text(encoding="utf-8")
    assert text == EXISTING + added
    assert added.startswith("\n[[accepted]]\n")
    data = tomllib.loads(text)
    assert data["accepted"] == [
        {
            "endpoint": "GET /api/analysis/{id}",
            "path": "$.createdAt",
            "kind": "value_changed",
            "reason": "ms precision dropped",
        }
    ]
    assert data["compare"] == {"ignore_paths": ["$..request_id"]}
    accept_difference(str(cfg), "get /api/reports", "$status", 'say "why"\nin two lines')
    data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    assert data["accepted"][1] == {
        "endpoint": "GET /api/reports",
        "path": "$status",
        "reason": 'say "why"\nin two lines',
    }


def test_accept_creates_a_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "new.toml"
    added = accept_difference(str(cfg), "POST /api/items", "$.id", "ids differ by design")
    assert cfg.read_text(encoding="utf-8") == added
    assert tomllib.loads(added)["accepted"][0]["path"] == "$.id"


def test_accept_after_a_nested_table_starts_a_top_level_entry(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_text('[[endpoints]]\nroute = "/x"\n[endpoints.compare]\ntolerance = 0.1', "utf-8")
    accept_difference(str(cfg), "GET /x", "$.a", "fine")
    data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    assert data["endpoints"][0]["compare"] == {"tolerance": 0.1}
    assert data["accepted"][0]["endpoint"] == "GET /x"


@pytest.mark.parametrize(
    ("endpoint", "path", "reason", "kind", "message"),
    [
        ("GET /x", "$.a", "  ", None, "reason is required"),
        ("/x", "$.a", "r", None, "is not 'METHOD /path'"),
        ("GET x", "$.a", "r", None, "is not 'METHOD /path'"),
        ("GET /x", "a.b", "r", None, "must start with '\\$'"),
        ("GET /x", "$.a", "r", "bogus", "kind 'bogus' is not one of"),
    ],
)
def test_accept_rejects_bad_input(
    tmp_path: Path, endpoint: str, path: str, reason: str, kind: str | None, message: str
) -> None:
    cfg = tmp_path / "shadow.toml"
    with pytest.raises(ConfigError, match=message) as info:
        accept_difference(str(cfg), endpoint, path, reason, kind)
    assert str(cfg) in str(info.value) and "\n" not in str(info.value)
    assert not cfg.exists()


def test_accept_refuses_invalid_toml_and_leaves_it_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_text("[compare\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        accept_difference(str(cfg), "GET /x", "$.a", "r")
    assert cfg.read_text(encoding="utf-8") == "[compare\n"


def test_accept_refuses_a_clashing_accepted_key(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_text("accepted = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"shadow\.toml"):
        accept_difference(str(cfg), "GET /x", "$.a", "r")
    assert cfg.read_text(encoding="utf-8") == "accepted = 1\n"


def test_accept_twice_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    accept_difference(str(cfg), "GET /x", "$.a", "r", "value_changed")
    with pytest.raises(ConfigError, match="already accepted"):
        accept_difference(str(cfg), "GET /x", "$.a", "again", "value_changed")
    accept_difference(str(cfg), "GET /x", "$.a", "another kind", "added")


def test_accept_keeps_crlf_line_endings(tmp_path: Path) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_bytes(b'[compare]\r\nheaders = ["content-type"]\r\n')
    accept_difference(str(cfg), "GET /x", "$.a", "r")
    raw = cfg.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert tomllib.loads(raw.decode())["accepted"][0]["path"] == "$.a"
