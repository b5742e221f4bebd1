"""A throwaway PostgreSQL server on 127.0.0.1, for the data-migration example and its tests.

    with TempPostgres(tmp_path / "pg") as server:
        url = server.create_database("legacy")   # postgresql://shadow@127.0.0.1:<port>/legacy
        server.create_user("reader", "s3cret")   # must log in with its password
        server.sql("SELECT 1")

`initdb` creates a cluster with the superuser `shadow` in `<directory>/data`, which
trusts `shadow` on 127.0.0.1 (and on its unix socket) and asks every other role for
its scram password. The server listens on 127.0.0.1 only, on a free port, with its
unix socket, its log (`postgres.log`) and its data in the same directory; durability
is switched off (fsync=off), it is meant to be thrown away.

PostgreSQL refuses to run as root: when this process is root, initdb / pg_ctl run as
the `postgres` system user (else `nobody`) through `runuser`. If that user cannot reach
`directory` (pytest's tmp dirs are private to root), the cluster lives in a private
temporary directory under the system tmp dir instead, `directory/"server"` links to it,
and `stop()` removes it after copying its log to `directory/"postgres.log"`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

SUPERUSER = "shadow"
_SOCKET_PATH_LIMIT = 90  # sun_path is 108 bytes; "/.s.PGSQL.<port>" needs 16 of them


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_tools(directory: Path) -> bool:
    return (directory / "initdb").is_file() and (directory / "pg_ctl").is_file()


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: "15", "9.6", ...
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name))


def find_binaries() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`, or None when PostgreSQL is not installed.

    Looks at `pg_config --bindir`, then Debian's /usr/lib/postgresql/<version>/bin (the
    highest version), then PATH.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_tools(Path(out)):
                return Path(out)
    debian = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if _has_tools(path)),
        key=_version_key,
        reverse=True,
    )
    if debian:
        return debian[0]
    initdb = shutil.which("initdb")
    if initdb:
        for candidate in (Path(initdb).parent, Path(initdb).resolve().parent):
            if _has_tools(candidate):
                return candidate
    return None


def _quote_ident(name: str) -> str:
    if "\x00" in name:
        raise ValueError("a NUL byte in an identifier")
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a NUL byte in a string literal")
    return "'" + value.replace("'", "''") + "'"  # standard_conforming_strings is on


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as when we are root (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' user")


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory from / down to `path` (path included)."""
    path = path.resolve()
    for directory in (*reversed(path.parents), path):
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid == user.pw_gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


class TempPostgres:
    """One PostgreSQL cluster + server process in its own directory, on 127.0.0.1:port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.bindir: Path | None = find_binaries()
        self.run_as = _unprivileged_user()
        self.home = self.directory  # where data/, socket/ and postgres.log live (see start)
        self._private_home = False
        self._postmaster_pid: int | None = None

    # --- paths -------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def running(self) -> bool:
        return self._postmaster_pid is not None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """initdb (first time only), start the server and wait until it answers a query."""
        if self.running:
            raise RuntimeError("this PostgreSQL server is already running")
        if self.bindir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)"
            )
        self._prepare_home()
        deadline = time.monotonic() + timeout
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(timeout)
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {shlex.quote(str(self.socket_dir))}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=50",
            ]
        )
        started = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file),
            "-w", "-t", str(max(1, int(timeout))), "start",
            timeout=timeout + 5, new_session=True,
        )  # fmt: skip
        self._postmaster_pid = self._read_postmaster_pid()
        if started.returncode != 0 or self._postmaster_pid is None:
            self._fail_start(f"pg_ctl start exited with {started.returncode}: {started.stdout}")
        while not self._ready():
            if time.monotonic() > deadline or not self._postmaster_alive():
                self._fail_start(f"the server did not accept connections within {timeout}s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (pg_ctl stop -m fast; SIGKILL to its process group if that fails)."""
        pid, self._postmaster_pid = self._postmaster_pid, None
        if pid is not None:
            self._shutdown(pid, timeout)
        if self._private_home:
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log_file, self.directory / "postgres.log")
            shutil.rmtree(self.home, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.directory / "server").unlink()
            self.home, self._private_home = self.directory, False

    def _shutdown(self, pid: int, timeout: float) -> None:
        try:
            stopped = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w",
                "-t", str(max(1, int(timeout))), "stop",
                timeout=timeout + 5,
            )  # fmt: skip
            ok = stopped.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok or _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                group = os.getpgid(pid)
                if group != os.getpgrp():  # never our own group (pg_ctl ran in a new session)
                    os.killpg(group, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- using it ----------------------------------------------------------------------------

    def url(
        self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None
    ) -> str:
        """postgresql://user[:password]@127.0.0.1:port/database"""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as `shadow` with autocommit; the rows it returns (if any).

        ADBC runs queries through COPY: `SHOW x` does not work, `SELECT current_setting('x')`
        does.
        """
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.url(database), autocommit=True) as con, con.cursor() as cur:
            cur.execute(statement)
            if cur.description is None:
                return []
            return [tuple(row) for row in cur.fetchall()]

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name (owned by `shadow`); its URL."""
        self.sql(f"CREATE DATABASE {_quote_ident(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS name WITH (FORCE): open connections are terminated."""
        self.sql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def create_user(self, name: str, password: str) -> None:
        """A login role that must authenticate with its (scram) password on 127.0.0.1.

        pg_hba.conf trusts only `shadow`; every other role needs its password, so a
        wrong one is refused. The role may connect to every database (CONNECT is granted
        to PUBLIC by default) but owns nothing.
        """
        self.sql(f"CREATE ROLE {_quote_ident(name)} LOGIN PASSWORD {_quote_literal(password)}")

    # --- internals ---------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._private_home:
            return
        too_long = len(str(self.directory.resolve() / "socket")) > _SOCKET_PATH_LIMIT
        unreachable = self.run_as is not None and not _reachable_by(self.directory, self.run_as)
        if too_long or unreachable:
            self.home = Path(tempfile.mkdtemp(prefix="shadow-pg-"))
            self._private_home = True
            link = self.directory / "server"
            with contextlib.suppress(OSError):
                link.unlink()
            with contextlib.suppress(OSError):
                link.symlink_to(self.home, target_is_directory=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        os.chmod(self.socket_dir, 0o700)
        if self.run_as is not None:
            _chown_tree(self.home, self.run_as)

    def _initdb(self, timeout: float) -> None:
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            timeout=max(timeout, 60),
        )  # fmt: skip
        if result.returncode != 0:
            # some systems lack the C.UTF-8 locale: plain C still gives a UTF8 cluster
            shutil.rmtree(self.data_dir, ignore_errors=True)
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
                timeout=max(timeout, 60),
            )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout[-3000:]}")
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# written by examples/data/postgres.py: trust the superuser `shadow` only;\n"
            "# every other role logs in with its password. Nothing but 127.0.0.1.\n"
            "# TYPE  DATABASE  USER    ADDRESS        METHOD\n"
            f"local   all       {SUPERUSER}                  trust\n"
            f"host    all       {SUPERUSER}  127.0.0.1/32   trust\n"
            "local   all       all                     scram-sha-256\n"
            "host    all       all     127.0.0.1/32   scram-sha-256\n"
        )
        if self.run_as is not None:
            os.chown(hba, self.run_as.pw_uid, self.run_as.pw_gid)

    def _command(self, tool: str, args: Sequence[str]) -> list[str]:
        assert self.bindir is not None
        cmd = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            cmd = [runuser, "-u", self.run_as.pw_name, "--", *cmd]
        return cmd

    def _run(
        self, tool: str, *args: str, timeout: float, new_session: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(tool, args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            cwd=self.home,  # the unprivileged user must be able to stat its cwd
            start_new_session=new_session,  # the postmaster gets its own process group
            check=False,
        )

    def _read_postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return None

    def _postmaster_alive(self) -> bool:
        return self._postmaster_pid is not None and _alive(self._postmaster_pid)

    def _ready(self) -> bool:
        """pg_isready on 127.0.0.1 (or a TCP probe), then a real `SELECT 1`."""
        assert self.bindir is not None
        isready = self.bindir / "pg_isready"
        if isready.is_file():
            probe = subprocess.run(
                [str(isready), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
            if probe.returncode != 0:
                return False
        else:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            except OSError:
                return False
        try:
            return self.sql("SELECT 1") == [(1,)]
        except ImportError:
            raise  # no ADBC driver: waiting would not help
        except Exception:
            return False

    def _fail_start(self, why: str) -> NoReturn:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])
        self.stop(timeout=10)
        raise RuntimeError(
            f"PostgreSQL did not start on 127.0.0.1:{self.port}: {why}\n"
            f"last lines of {self.log_file}:\n{tail}"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
