"""Bad input gives one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Server, free_port, shadow_cmd

pytestmark = pytest.mark.integration


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shadow_cmd(*args), capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("shadow: error:")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def _proxy_args(primary: str, candidate: str, tmp: Path, *extra: str) -> list[str]:
    return [
        "proxy", "--primary", primary, "--candidate", candidate,
        "--listen", f"127.0.0.1:{free_port()}", "--confdir", str(tmp / "mitm"), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("this is = not [toml", "not valid TOML"),
        ("[bogus]\nx = 1\n", "unknown section 'bogus'"),
        ("[[endpoints]]\nmethods = ['GET']\n", "'route'"),
        ("[compare]\nignore_paths = 3\n", "ignore_paths"),
    ],
)
def test_bad_config_file(
    content: str, needle: str, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    cfg = tmp_path / "shadow.toml"
    cfg.write_text(content)
    db = tmp_path / "x.duckdb"
    r = _run(
        *_proxy_args(legacy.url, candidate.url, tmp_path, "--config", str(cfg), "--db", str(db))
    )
    _assert_one_line_error(r, 2, str(cfg), needle)


def test_missing_config_file(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    r = _run(*_proxy_args(legacy.url, candidate.url, tmp_path, "--config", "nope.toml"))
    _assert_one_line_error(r, 2, "nope.toml", "not found")


def test_unreachable_primary(candidate: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = _run(*_proxy_args(dead, candidate.url, tmp_path, "--db", str(tmp_path / "d.duckdb")))
    _assert_one_line_error(r, 4, "primary", dead, "not reachable")


def test_database_that_is_not_duckdb(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    bad = tmp_path / "notes.duckdb"
    bad.write_text("these are my notes, not a database\n")
    r = _run(*_proxy_args(legacy.url, candidate.url, tmp_path, "--db", str(bad)))
    _assert_one_line_error(r, 3, str(bad), "not a DuckDB database")
    assert bad.read_text() == "these are my notes, not a database\n"  # untouched
    r = _run("report", "--db", str(bad), "-o", str(tmp_path / "r.html"))
    _assert_one_line_error(r, 3, "not a DuckDB database")


def test_report_on_missing_database(tmp_path: Path) -> None:
    r = _run("report", "--db", str(tmp_path / "none.duckdb"), "-o", str(tmp_path / "r.html"))
    _assert_one_line_error(r, 3, "does not exist")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--candidate", "ftp://x"], "--candidate"),
        (["--listen", "nonsense:port"], "--listen"),
        (["--mirror-unsafe", "PO ST"], "not an HTTP method"),
    ],
)
def test_bad_options(args: list[str], needle: str, legacy: Server, tmp_path: Path) -> None:
    base = {"--candidate": "http://127.0.0.1:9", "--listen": f"127.0.0.1:{free_port()}"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    extra = [a for a in args if a not in base and a not in base.values()]
    r = _run(
        "proxy", "--primary", legacy.url, *flat, *extra,
        "--db", str(tmp_path / "o.duckdb"), "--confdir", str(tmp_path / "m"),
    )  # fmt: skip
    _assert_one_line_error(r, 2, needle)


def test_reused_run_id_is_refused(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    from shadow.store.writer import Run, StoreWriter

    db = tmp_path / "runs.duckdb"
    writer = StoreWriter(str(db))
    writer.run_changed(Run(run_id="nightly", source="proxy", started_at=0.0))
    writer.flush()
    args = _proxy_args(legacy.url, candidate.url, tmp_path, "--db", str(db), "--run-id", "nightly")
    r = _run(*args)
    _assert_one_line_error(r, 2, "nightly", "already in")
