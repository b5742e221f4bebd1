"""curl commands: every stored value shell-quoted; checked by running them through bash."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from reports.curl import curl_command

NASTY_BODY = """{"name": "it's $(touch /tmp/pwned) `id` \\"x\\"", "at": "@/etc/passwd"}"""


def argv(command: str, env: dict[str, str] | None = None) -> list[str]:
    """The arguments bash would pass to curl (a shell function stands in for it)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = 'curl() { printf "%s\\0" "$@"; }\n' + command
    done = subprocess.run(
        [bash, "-c", script], capture_output=True, check=True, env=env or {}, timeout=10
    )
    return done.stdout.decode().split("\0")[:-1]


def test_quoting_survives_the_shell() -> None:
    headers = [
        ("Host", "old.example"),
        ("Content-Length", "12"),
        ("Authorization", "[REDACTED]"),
        ("X-Quote", 'a\'b "c" $HOME'),
    ]
    cmd = curl_command(
        "http://cand:9000/", "CANDIDATE_URL", "post", "/api/x y", "q=1&token=[REDACTED]",
        headers, NASTY_BODY,
    )  # fmt: skip
    assert argv(cmd) == [
        "-sS", "-X", "POST", "http://cand:9000/api/x y?q=1&token=[REDACTED]",
        "-H", "Authorization: [REDACTED]",
        "-H", "X-Quote: a'b \"c\" $HOME",
        "--data-raw", NASTY_BODY,
    ]  # fmt: skip


def test_get_head_and_unknown_base_url() -> None:
    get = curl_command(None, "PRIMARY_URL", "GET", "/a", None, [("Accept", "*/*")], None)
    assert get.startswith('curl -sS "${PRIMARY_URL}"/a')
    assert argv(get, {"PRIMARY_URL": "http://p:1"}) == ["-sS", "http://p:1/a", "-H", "Accept: */*"]
    head = curl_command("http://p", "PRIMARY_URL", "HEAD", "/a", "x=1", [], None)
    assert argv(head) == ["-sS", "--head", "http://p/a?x=1"]
