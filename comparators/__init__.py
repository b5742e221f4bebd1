"""Pure comparison of two HTTP responses: no I/O, no mitmproxy, nothing of ours.

from comparators import Payload, compare, parse_rules

rules = parse_rules({"ignore_paths": ["$..request_id"], "masks": ["iso_timestamp"]})
result = compare(Payload(200, body=b"..."), Payload(200, body=b"..."), rules)

Migration-aware normalizers (`normalize = {...}`, `list_keys = {...}`), the
difference paths and the notes are described in comparators/README.md, and so is
the comparison of WebSocket / Socket.IO / SSE conversations (`Payload.stream`).
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
    "compare_conversations": "conversation",
    "body_text": "decode",
    "decode_body": "decode",
    "media_type": "decode",
    "Conversation": "envelope",
    "Frame": "envelope",
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
    "is_socketio": "socketio",
}

if TYPE_CHECKING:
    from comparators.align import Normalization
    from comparators.canonical import canonical_json
    from comparators.comparison import compare
    from comparators.conversation import compare_conversations
    from comparators.decode import body_text, decode_body, media_type
    from comparators.envelope import Conversation, Frame
    from comparators.errors import ComparatorError, DecodeError, RuleError
    from comparators.model import Comparison, Difference, Headers, Kind, Payload, Verdict
    from comparators.paths import cluster_path, format_path
    from comparators.rules import DEFAULT_RULES, Rules, parse_rules
    from comparators.socketio import is_socketio


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
    "Conversation",
    "DecodeError",
    "Difference",
    "Frame",
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
    "compare_conversations",
    "decode_body",
    "format_path",
    "is_socketio",
    "media_type",
    "parse_rules",
]
