"""`shadow accept`: record a known, accepted difference in the config, with its reason.

Accepted differences stay visible (status 'accepted' in the store and the report)
but no longer count against parity. The entry is appended to the TOML file as
text, so the user's comments and layout stay as they were.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from typing import Any

from comparators.model import Kind
from shadow.errors import ConfigError

_ENDPOINT_RE = re.compile(r"([A-Za-z]+) (/\S*)")
_KINDS = tuple(k.value for k in Kind)


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def accept_difference(
    config_path: str, endpoint: str, path: str, reason: str, kind: str | None = None
) -> str:
    """Append an `[[accepted]]` entry to the TOML file at `config_path`; return the text added.

    The file is created when missing; its text is kept as it is and the result is
    checked to parse before it is written.
    """
    m = _ENDPOINT_RE.fullmatch(endpoint.strip())
    if not m:
        raise ConfigError(f"{config_path}: endpoint {endpoint!r} is not 'METHOD /path'")
    endpoint = f"{m.group(1).upper()} {m.group(2)}"
    path = path.strip()
    if not path.startswith("$") or any(ch in path for ch in "\r\n"):
        raise ConfigError(f"{config_path}: path {path!r} must start with '$' (like $.createdAt)")
    reason = reason.strip()
    if not reason:
        raise ConfigError(f"{config_path}: a reason is required to accept a difference")
    if kind is not None and kind not in _KINDS:
        raise ConfigError(f"{config_path}: kind {kind!r} is not one of {', '.join(_KINDS)}")
    try:
        with open(config_path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
    existing = _parse_toml(text, config_path)
    entry = {"endpoint": endpoint, "path": path, "reason": reason}
    if kind is not None:
        entry["kind"] = kind
    old_entries = existing.get("accepted")
    for old in old_entries if isinstance(old_entries, list) else []:
        if isinstance(old, dict) and all(
            old.get(k) == entry.get(k) for k in ("endpoint", "path", "kind")
        ):
            raise ConfigError(f"{config_path}: {endpoint} {path} is already accepted")
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = ["[[accepted]]", f"endpoint = {_toml_str(endpoint)}", f"path = {_toml_str(path)}"]
    if kind is not None:
        lines.append(f"kind = {_toml_str(kind)}")
    lines.append(f"reason = {_toml_str(reason)}")
    if not text or text.endswith(("\n\n", "\r\n\r\n")):
        lead = ""  # new file, or a blank line already
    elif text.endswith("\n"):
        lead = nl
    else:
        lead = nl * 2
    added = lead + nl.join(lines) + nl
    parsed = _parse_toml(text + added, config_path)
    accepted = parsed.get("accepted")
    if not isinstance(accepted, list) or accepted[-1] != entry:
        raise ConfigError(f"{config_path}: 'accepted' is not an array of tables ([[accepted]])")
    parent = os.path.dirname(os.path.abspath(config_path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot write config file {config_path}: {parent} does not exist")
    try:
        with open(config_path, "a", encoding="utf-8", newline="") as fh:
            fh.write(added)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {config_path}: {exc}") from None
    return added


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {source} is not valid TOML: {exc}") from None


__all__ = ["accept_difference"]
