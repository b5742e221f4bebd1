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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--primary", "http://[bad"], "--primary"),
        (["--candidate", "http://[::1"], "--candidate"),
        (["--timeout", "nan"], "--timeout nan"),
        (["--timeout", "-1"], "--timeout -1"),
        (["--timeout", "inf"], "--timeout inf"),
        (["--listen", "[::1:8399"], "--listen"),
        (["--listen", "[nothex]:8399"], "--listen"),
        (["--listen", "127.0.0.1:99999"], "--listen"),
        (["--mirror-unsafe", "FOO"], "not an HTTP method: 'FOO'"),
        (["--drain-timeout", "0"], "--drain-timeout 0"),
        (["--drain-timeout", "nan"], "--drain-timeout nan"),
        (["--drain-timeout", "3000000"], "--drain-timeout 3000000"),
        (["--max-body", "lots"], "--max-body 'lots'"),
        (["--worker-memory", "0"], "--worker-memory '0'"),
        (["--concurrency", "0"], "--concurrency 0"),
    ],
)
def test_bad_proxy_values_are_one_line_and_exit_2(
    args: list[str], needle: str, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    base = {"--primary": legacy.url, "--candidate": candidate.url}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv if kv[0] in ("--primary", "--candidate")]
    rest = [x for kv in base.items() for x in kv if kv[0] not in ("--primary", "--candidate")]
    r = _run(
        "proxy", *flat, "--confdir", str(tmp_path / "mitm"), "--db", str(tmp_path / "x.duckdb"),
        *(rest if "--listen" in base else [*rest, "--listen", f"127.0.0.1:{free_port()}"]),
    )  # fmt: skip
    _assert_one_line_error(r, 2, needle)


def test_a_busy_listen_port_is_its_own_exit_code(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = _run(
            "proxy", "--primary", legacy.url, "--candidate", candidate.url,
            "--listen", f"127.0.0.1:{port}", "--confdir", str(tmp_path / "mitm"),
            "--db", str(tmp_path / "x.duckdb"),
        )  # fmt: skip
    _assert_one_line_error(r, 6, f"127.0.0.1:{port}", "cannot listen")


def test_a_traffic_path_that_is_a_directory_is_exit_5(candidate: Server, tmp_path: Path) -> None:
    target = tmp_path / "traffic.d"
    target.mkdir()
    r = _run("replay", str(target), "--candidate", candidate.url, "--db", str(tmp_path / "r.db"))
    _assert_one_line_error(r, 5, str(target), "is a directory")


def test_bad_replay_numbers_are_one_line(candidate: Server, tmp_path: Path) -> None:
    traffic = tmp_path / "t.jsonl"
    traffic.write_text("")
    for args, needle in ((["--timeout", "nan"], "--timeout nan"), (["--rate", "0"], "--rate 0")):
        r = _run(
            "replay", str(traffic), "--candidate", candidate.url,
            "--db", str(tmp_path / "r.duckdb"), *args,
        )  # fmt: skip
        _assert_one_line_error(r, 2, needle)
