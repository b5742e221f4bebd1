"""Traffic files: read recorded exchanges (HAR, mitmproxy dumps, GoReplay, JSON Lines)
and write them (HAR, JSON Lines).

    for rec in read_traffic("traffic.har", skip_bad=True, on_skip=print):
        rec.request, rec.response, rec.started_at, rec.elapsed_ms, rec.url, rec.index

Readers hand out `Recorded` values built from `shadow.model.Request` and
`comparators.model.Payload`; nothing downstream sees a file entry. Bodies are
kept as on the wire where the file has them so; formats that store decoded
bodies (HAR) lose their Content-Encoding header instead (see FORMAT.md).
"""

from shadow.sources._base import Recorded
from shadow.sources.detect import FORMATS, detect_format
from shadow.sources.read import read_traffic
from shadow.sources.write import HarWriter, JsonlWriter, MitmWriter

__all__ = [
    "FORMATS",
    "HarWriter",
    "JsonlWriter",
    "MitmWriter",
    "Recorded",
    "detect_format",
    "read_traffic",
]
