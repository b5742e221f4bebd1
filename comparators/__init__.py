"""Pure comparison of two HTTP responses: no I/O, no mitmproxy, nothing of ours.

from comparators import Payload, compare, parse_rules

rules = parse_rules({"ignore_paths": ["$..request_id"], "masks": ["iso_timestamp"]})
result = compare(Payload(200, body=b"..."), Payload(200, body=b"..."), rules)

Migration-aware normalizers (`normalize = {...}`, `list_keys = {...}`), the
difference paths and the notes are described in comparators/README.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names and the module each comes from. They are imported on first use, so a
# reader that needs only `cluster_path` or the model (`shadow check`) does not pay
# for DeepDiff's import (a third of a second).
_WHERE = {
    "Normalization": "align",
    "canonical_json": "canonical",
    "compare": "comparison",
    "body_text": "decode",
    "decode_body": "decode",
    "media_type": "decode",
    "ComparatorError": "errors",
    "DecodeError": "errors",
    "RuleError": "errors",
    "Comparison": "model",
    "Difference": "model",
    "Headers": "model",
    "Kind": "model",
    "Payload": "model",
    "Verdict": "model",
    "cluster_path": "paths",
    "format_path": "paths",
    "DEFAULT_RULES": "rules",
    "Rules": "rules",
    "parse_rules": "rules",
}

if TYPE_CHECKING:
    from comparators.align import Normalization
    from comparators.canonical import canonical_json
    from comparators.comparison import compare
    from comparators.decode import body_text, decode_body, media_type
    from comparators.errors import ComparatorError, DecodeError, RuleError
    from comparators.model import Comparison, Difference, Headers, Kind, Payload, Verdict
    from comparators.paths import cluster_path, format_path
    from comparators.rules import DEFAULT_RULES, Rules, parse_rules


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'comparators' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"comparators.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_RULES",
    "ComparatorError",
    "Comparison",
    "DecodeError",
    "Difference",
    "Headers",
    "Kind",
    "Normalization",
    "Payload",
    "RuleError",
    "Rules",
    "Verdict",
    "body_text",
    "canonical_json",
    "cluster_path",
    "compare",
    "decode_body",
    "format_path",
    "media_type",
    "parse_rules",
]
