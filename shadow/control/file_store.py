"""The flag store in a local JSON file (the default); see shadow.control.flags for its layout."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from shadow.config.control import RouteMode, check_flag_name
from shadow.control.flags import (
    HISTORY_LIMIT,
    LOCK_WAIT,
    MAX_FILE_BYTES,
    Change,
    FlagState,
    parse_features,
    parse_history,
    parse_routes,
)
from shadow.errors import FlagStoreError


class FileFlagStore:
    """A JSON file beside the config; safe for concurrent writers on one machine."""

    def __init__(self, path: str, polled: bool = False) -> None:
        # A symlink's target is what is read, locked and replaced (the link stays one),
        # found anew each time: a ConfigMap mount or `ln -sfn` swaps it.
        self.path = os.path.abspath(path)
        self.polled = polled  # read by a watcher: an empty file is one being written

    def describe(self) -> str:
        return self.path

    async def read(self, features: Collection[str]) -> FlagState:
        doc = await asyncio.to_thread(self._load, self.polled)
        routes, problems = parse_routes(doc["routes"])
        wanted = {k: v for k, v in doc["features"].items() if k in set(features)}
        values, bad = parse_features(wanted)
        return FlagState(routes, values, tuple(problems + bad))

    async def set_route(
        self, route: str, mode: RouteMode, flag: str, change: Change, write_flag: bool = True
    ) -> None:
        check_flag_name(flag)

        def apply(doc: dict[str, Any]) -> None:
            doc["routes"][route] = mode.to_json()
            if write_flag:
                doc["features"][flag] = mode.serving

        await asyncio.to_thread(self._update, apply, change)

    async def set_feature(self, name: str, value: bool, change: Change) -> None:
        check_flag_name(name)

        def apply(doc: dict[str, Any]) -> None:
            doc["features"][name] = value

        await asyncio.to_thread(self._update, apply, change)

    async def features(self) -> dict[str, bool]:
        doc = await asyncio.to_thread(self._load)
        return parse_features(doc["features"])[0]

    async def history(self, limit: int = HISTORY_LIMIT) -> list[Change]:
        doc = await asyncio.to_thread(self._load)
        return parse_history(doc["history"])[-limit:] if limit > 0 else []

    async def aclose(self) -> None:
        return None

    # The blocking parts, run in a thread.

    def _load(self, strict: bool = False) -> dict[str, Any]:
        """The file's document with its three sections ({} ones if the file is missing).

        `strict` (what the proxy polls): an empty file is an error, not "no flags": an
        editor or `echo ... >` truncates before it writes, and a read in between must
        not send every route back to its config mode. (Writers take it as empty.)
        """
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size > MAX_FILE_BYTES:
                    raise self._too_large()
                data = fh.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {"routes": {}, "features": {}, "history": []}
        except OSError as exc:
            raise FlagStoreError(f"flags file {self.path}: cannot read ({exc.strerror})") from None
        if len(data) > MAX_FILE_BYTES:
            raise self._too_large()
        if strict and not data.strip():
            raise FlagStoreError(f"flags file {self.path} is empty (being written?)")
        return self._parse(data)

    def _too_large(self) -> FlagStoreError:
        return FlagStoreError(f"flags file {self.path} is larger than {MAX_FILE_BYTES} bytes")

    def _parse(self, data: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(data.decode("utf-8")) if data.strip() else {}
        except UnicodeDecodeError:
            raise FlagStoreError(f"flags file {self.path} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise FlagStoreError(
                f"flags file {self.path} is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        if not isinstance(doc, dict):
            raise FlagStoreError(f"flags file {self.path} must hold a JSON object")
        for key, kind in (("routes", dict), ("features", dict), ("history", list)):
            doc.setdefault(key, kind())
            if not isinstance(doc[key], kind):
                what = "an object" if kind is dict else "a list"
                raise FlagStoreError(f"flags file {self.path}: {key!r} must be {what}")
        return doc

    def _update(self, apply: Callable[[dict[str, Any]], None], change: Change) -> None:
        """Read, change and replace the file while holding its lock."""
        target = os.path.realpath(self.path)
        with self._locked(target):
            doc = self._load()  # a broken file is refused, not overwritten
            apply(doc)
            doc["history"] = [*doc["history"], change.to_json()][-HISTORY_LIMIT:]
            data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
            # The file must stay readable (MAX_FILE_BYTES), or no change could be made
            # any more, a kill switch or a rollback included: the oldest history goes.
            while len(data) > MAX_FILE_BYTES and len(doc["history"]) > 1:
                doc["history"] = doc["history"][len(doc["history"]) // 2 :]
                data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
            if len(data) > MAX_FILE_BYTES:
                raise FlagStoreError(
                    f"flags file {self.path}: the change would make it larger than "
                    f"{MAX_FILE_BYTES} bytes"
                )
            self._replace(data, target)

    @contextlib.contextmanager
    def _locked(self, target: str) -> Iterator[None]:
        lock = f"{target}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            folder = os.path.dirname(os.path.abspath(self.path))
            raise FlagStoreError(
                f"flags file {self.path}: folder {folder} does not exist"
            ) from None
        except OSError as exc:
            raise FlagStoreError(f"flags file {self.path}: cannot lock ({exc.strerror})") from None
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise FlagStoreError(
                            f"flags file {self.path}: cannot lock ({exc.strerror})"
                        ) from None
                    if time.monotonic() > deadline:
                        raise FlagStoreError(
                            f"flags file {self.path} is locked by another writer ({lock})"
                        ) from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _replace(self, data: bytes, target: str) -> None:
        """Write `data` beside the file (`target`: it, a link resolved) and rename it over."""
        folder = os.path.dirname(target)
        try:
            mode = os.stat(target).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
        try:
            fd, tmp = tempfile.mkstemp(prefix=".shadow-flags.", dir=folder)
        except OSError as exc:
            raise FlagStoreError(f"flags file {self.path}: cannot write ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise FlagStoreError(f"flags file {self.path}: cannot write ({exc.strerror})") from None
        with contextlib.suppress(OSError):  # the rename itself survives a crash
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


# --------------------------------------------------------------------------- redis


__all__ = ["FileFlagStore"]
