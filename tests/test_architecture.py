"""ARCHITECTURE.md's import rules, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the packages of ours it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "comparators": set(),
    "shadow.base": {"comparators"},  # shadow/model.py, errors.py, urls.py
    "shadow.config": {"comparators", "shadow.base"},
    "shadow.store": {"comparators", "shadow.base", "shadow.config"},
    "shadow.pipeline": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.sources",
    },
    # traffic file formats (readers, writers): below the pipeline, which records with them
    "shadow.sources": {"comparators", "shadow.base"},
    # the replay source runner (shadow/sources/replay.py): above the pipeline
    "shadow.replay": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
        "shadow.sources",
    },
    # route modes, flag stores, rollback: beside the pipeline (it watches its results)
    "shadow.control": {"comparators", "shadow.base", "shadow.config", "shadow.store"},
    # live metrics, health and status: read the pipeline, the store and the flags
    "shadow.monitoring": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
        "shadow.control",
    },
    "shadow.live": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
        "shadow.control", "shadow.monitoring",
    },
    "shadow.review": {"comparators", "shadow.base", "shadow.config", "shadow.store"},
    # the pytest plugin: an application like the CLI, built on the pipeline's evaluate, the
    # store's writer, the traffic readers, the flag stores and the reports' curl commands
    "shadow.testing": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
        "shadow.sources", "shadow.control", "reports",
    },
    "reports": {"comparators", "shadow.base", "shadow.config", "shadow.store"},
    # data verification: its own sources (databases), the comparators on rows, the
    # pipeline's redaction, the store's writer
    "shadow.data": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
    },
    # the mirror target: a source above the pipeline, like replay (no mitmproxy)
    "shadow.sink": {
        "comparators", "shadow.base", "shadow.config", "shadow.store", "shadow.pipeline",
    },
}  # fmt: skip
BASE = {"shadow", "shadow.model", "shadow.errors", "shadow.urls"}


def _package(module: str) -> str | None:
    """The layer a dotted module name belongs to (None: not ours, or the CLI)."""
    if module in BASE:
        return "shadow.base"
    if module.startswith("shadow.sources.replay"):
        return "shadow.replay"
    parts = module.split(".")
    if parts[0] in ("comparators", "reports"):
        return parts[0]
    if parts[0] == "shadow" and len(parts) > 1:
        layer = f"shadow.{parts[1]}"
        return layer if layer in ALLOWED else None
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _sources() -> list[Path]:
    files = [*ROOT.glob("comparators/**/*.py"), *ROOT.glob("reports/**/*.py")]
    files += [p for p in ROOT.glob("shadow/**/*.py") if "cli" not in p.parts]
    return sorted(files)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    mine = _package(module.removesuffix(".__init__"))
    assert mine is not None, module
    bad = sorted(
        name
        for name in _imports(path)
        if (other := _package(name)) is not None and other != mine and other not in ALLOWED[mine]
    )
    assert not bad, f"{module} ({mine}) may not import {bad}"


def test_only_the_cli_knows_every_package() -> None:
    cli = _imports(ROOT / "shadow" / "cli" / "main.py")
    assert {p for n in cli if (p := _package(n))} >= {"shadow.review", "shadow.store"}
