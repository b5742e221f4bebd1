"""Bad input to the pytest plugin is a usage error, as a user sees it in a real pytest run:
exit code 4, one `ERROR: shadow: ...` line on stderr, no traceback anywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LEGACY = "examples.legacy.app:http_app"
CANDIDATE = "examples.candidate.app:http_app"
BOTH = ("--shadow-primary", LEGACY, "--shadow-candidate", CANDIDATE)
USES_PAIR = "def test_health(shadow_pair):\n    assert shadow_pair.get('/api/health').matches()\n"


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocess sessions can import `examples` (the repo root)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_uses_pair=USES_PAIR)
    pytester.path.joinpath("junk.txt").write_text("not a traffic file, just some words\n")
    pytester.path.joinpath("broken.yaml").write_text("openapi: 3.0.0\npaths: [unclosed\n  x: {\n")
    pytester.path.joinpath("nopaths.json").write_text('{"openapi": "3.0.3", "info": {}}')
    pytester.path.joinpath("bad.toml").write_text("[nosuch]\nx = 1\n")
    pytester.path.joinpath("exiter.py").write_text("import sys\nsys.exit(3)\n")
    shutil.copy(ROOT / "tests" / "data" / "traffic" / "chromium.har", pytester.path)
    return pytester


CASES = {
    "no candidate for a shadow_pair test": (
        ["test_uses_pair.py", "--shadow-primary", LEGACY],
        "test_uses_pair.py::test_health uses shadow_pair but no candidate backend is given",
    ),
    "no backend at all for a shadow_pair test": (
        ["test_uses_pair.py"],
        "uses shadow_pair but no primary backend is given",
    ),
    "a missing traffic file": (
        ["--shadow-replay", "missing.har", "--shadow-candidate", CANDIDATE],
        "missing.har: cannot read",
    ),
    "a file that is no traffic file": (
        ["--shadow-replay", "junk.txt", "--shadow-candidate", CANDIDATE],
        "junk.txt: not a recognised traffic file",
    ),
    "an OpenAPI document that is neither JSON nor YAML": (
        ["--shadow-openapi", "broken.yaml", *BOTH],
        "broken.yaml is neither JSON nor YAML",
    ),
    "an OpenAPI document without paths": (
        ["--shadow-openapi", "nopaths.json", *BOTH],
        "nopaths.json is not an OpenAPI 3 document",
    ),
    "an unimportable module:app": (
        ["test_uses_pair.py", "--shadow-primary", LEGACY, "--shadow-candidate", "nosuchmodule:app"],
        "--shadow-candidate nosuchmodule:app: cannot import nosuchmodule",
    ),
    "a URL that is not http(s)": (
        ["test_uses_pair.py", "--shadow-primary", LEGACY, "--shadow-candidate", "ftp://x"],
        "only http:// and https:// URLs are backends",
    ),
    "a config file with an unknown section": (
        ["test_uses_pair.py", *BOTH, "--shadow-config", "bad.toml"],
        "bad.toml: unknown section 'nosuch'",
    ),
    "a timeout of zero": (
        ["test_uses_pair.py", *BOTH, "--shadow-timeout", "0"],
        "--shadow-timeout must be a positive number of seconds",
    ),
    "a timeout that is not a number": (
        ["test_uses_pair.py", *BOTH, "--shadow-timeout", "nan"],
        "--shadow-timeout must be a positive number of seconds",
    ),
    "no examples": (
        ["--shadow-openapi", "nopaths.json", *BOTH, "--shadow-examples", "0"],
        "--shadow-examples must be at least 1",
    ),
    "an app module that exits on import": (
        ["test_uses_pair.py", "--shadow-primary", LEGACY, "--shadow-candidate", "exiter:app"],
        "--shadow-candidate exiter:app: cannot import exiter: SystemExit",
    ),
    "a replay without a candidate": (
        ["--shadow-replay", "chromium.har"],
        "--shadow-replay needs a candidate",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_usage_error_line(inner: pytest.Pytester, case: str) -> None:
    args, says = CASES[case]
    result = inner.runpytest_subprocess(*args)
    out, err = result.stdout.str(), result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (out, err)
    errors = [line for line in result.errlines if line.startswith("ERROR: shadow:")]
    assert len(errors) == 1, err
    assert says in errors[0], errors[0]
    assert "Traceback" not in out + err
    assert not [line for line in result.errlines if line.strip() and line not in errors], err
    # Nothing ran: the problem is said before any test.
    assert "passed" not in out and "failed" not in out


def test_listing_tests_needs_no_backend(inner: pytest.Pytester) -> None:
    """An IDE's discovery (--collect-only) and a skipped test make no usage error."""
    listed = inner.runpytest_subprocess("test_uses_pair.py", "--collect-only", "-q")
    assert listed.ret == pytest.ExitCode.OK, listed.stderr.str()
    inner.makepyfile(
        test_skipped="""
        import pytest

        @pytest.mark.skip(reason="no backends here")
        def test_skipped(shadow_pair):
            pass

        @pytest.mark.skipif("True", reason="a condition string")
        def test_skipped_by_a_string(shadow_pair):
            pass

        def test_other():
            pass
        """
    )
    result = inner.runpytest_subprocess("test_skipped.py")
    result.assert_outcomes(passed=1, skipped=2)
    # Listing recorded traffic needs no candidate either.
    listed = inner.runpytest_subprocess("--shadow-replay", "chromium.har", "--collect-only", "-q")
    assert listed.ret == pytest.ExitCode.OK, listed.stderr.str()
    assert "12 tests collected" in listed.stdout.str()
