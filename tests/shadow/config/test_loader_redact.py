"""shadow.config.loader: the [redact] section (names and path patterns for redaction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shadow.config.loader import Config, RedactSettings, load_config, parse_config
from shadow.errors import ConfigError, ShadowError
from shadow.pipeline.redact import DEFAULT, REDACTED, redactor_for


def test_defaults_without_a_section() -> None:
    assert parse_config({}).redact == RedactSettings()
    assert Config().redact == RedactSettings(random_segments=True)
    assert redactor_for(Config().redact) is DEFAULT


def test_a_full_section_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text(
        """
[redact]
headers = ["X-Tenant-Key"]
keys = ["customer_ref", "dob"]
query = ["ref_code"]
paths = ['^/reset/([^/]+)', 'hooks/[0-9a-f]{32}']
random_segments = false
""",
        encoding="utf-8",
    )
    cfg = load_config(str(path))
    assert cfg.redact == RedactSettings(
        headers=("X-Tenant-Key",),
        keys=("customer_ref", "dob"),
        query=("ref_code",),
        paths=("^/reset/([^/]+)", "hooks/[0-9a-f]{32}"),
        random_segments=False,
    )
    r = redactor_for(cfg.redact)
    assert r is redactor_for(cfg.redact)  # built once per settings
    assert r.is_secret_header("x-tenant-key") and not DEFAULT.is_secret_header("X-Tenant-Key")
    assert r.is_secret_key("customerRef") and r.is_secret_key("DOB")
    assert not r.is_secret_key("refCode") and r.is_secret_param("refCode")
    assert r.path("/reset/abc/confirm") == f"/reset/{REDACTED}/confirm"
    assert r.path("/hooks/" + "ab12" * 8) == f"/{REDACTED}"
    token = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU"
    assert r.path(f"/t/{token}") == f"/t/{token}"  # random_segments = false
    assert DEFAULT.path(f"/t/{token}") == f"/t/{REDACTED}"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("x", r"^inline: 'redact' must be a table \(\[redact\]\)$"),
        ({"header": ["a"]}, r"^inline: \[redact\]: unknown key 'header'$"),
        ({"headers": "X-Key"}, r"^inline: \[redact\]: 'headers' must be a list of non-empty str"),
        ({"keys": [1]}, r"^inline: \[redact\]: 'keys' must be a list of non-empty strings$"),
        ({"query": [""]}, r"^inline: \[redact\]: 'query' must be a list of non-empty strings$"),
        ({"keys": ["--"]}, r"^inline: \[redact\]: keys entry '--' has no letters or digits$"),
        ({"paths": ["("]}, r"^inline: \[redact\]: paths\[0\] '\(' is not a regex: "),
        ({"paths": ["/ok", "x*"]}, r"^inline: \[redact\]: paths\[1\] 'x\*' matches the empty str"),
        ({"paths": ["(?=/)"]}, r"matches the empty string$"),
        ({"random_segments": "yes"}, r"^inline: \[redact\]: 'random_segments' must be true or "),
        ({"random_segments": 1}, r"'random_segments' must be true or false$"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line_config_errors(section: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config({"redact": section}, source="inline")
    assert isinstance(info.value, ShadowError)
    assert "\n" not in str(info.value)


def test_bad_section_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[redact]\npaths = ["[a-"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}: \[redact\]: paths\[0\]"):
        load_config(str(path))
