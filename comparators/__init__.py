"""Pure comparison of two HTTP responses: no I/O, no mitmproxy, nothing of ours.

from comparators import Payload, compare, parse_rules

rules = parse_rules({"ignore_paths": ["$..request_id"], "masks": ["iso_timestamp"]})
result = compare(Payload(200, body=b"..."), Payload(200, body=b"..."), rules)

Migration-aware normalizers (`normalize = {...}`, `list_keys = {...}`), the
difference paths and the notes are described in comparators/README.md.
"""

from comparators.align import Normalization
from comparators.canonical import canonical_json
from comparators.compare import compare
from comparators.decode import body_text, decode_body, media_type
from comparators.errors import ComparatorError, DecodeError, RuleError
from comparators.model import Comparison, Difference, Headers, Kind, Payload, Verdict
from comparators.paths import format_path
from comparators.rules import DEFAULT_RULES, Rules, parse_rules

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
    "compare",
    "decode_body",
    "format_path",
    "media_type",
    "parse_rules",
]
