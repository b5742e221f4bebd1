"""shadow.urls.parse_size: sizes on the command line."""

from __future__ import annotations

import pytest

from shadow.errors import ConfigError
from shadow.urls import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("65536", 65536),
        ("64k", 65536),
        ("64KiB", 65536),
        ("8MiB", 8 << 20),
        ("8m", 8 << 20),
        ("1.5M", 3 << 19),
        ("2G", 2 << 30),
        ("10kb", 10_000),
        (" 512 MiB ", 512 << 20),
        ("1024G", 1 << 40),
        ("1TiB", 1 << 40),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text, "--max-body") == expected


@pytest.mark.parametrize(
    "text", ["", "0", "-5", "8XB", "lots", "1e9", "0.1", "9" * 400, "2TiB", "1025G"]
)
def test_bad_sizes_are_one_line_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_size(text, "--max-body")
    assert str(err.value).startswith("--max-body") and "\n" not in str(err.value)
