"""The benchmark backend: a plain ASGI app answering any GET with the same ~1 KB JSON.

Used as both primary and candidate (identical answers, so every copy compares as
"match"). Run it with either of:

    python -m uvicorn benchmarks.app:app --host 127.0.0.1 --port 3000 --log-level warning
    python benchmarks/app.py --port 3000
"""

from __future__ import annotations

import argparse
import json
from typing import Any

_DOC = {
    "id": 4711,
    "kind": "analysis",
    "status": "complete",
    "owner": {"id": 17, "name": "Ada Lovelace", "email": "ada@example.com"},
    "tags": ["alpha", "beta", "gamma", "delta", "epsilon"],
    "metrics": {"latency_ms": 12.5, "error_rate": 0.0025, "throughput": 1450, "ok": True},
    "items": [
        {"sku": f"SKU-{i:04d}", "name": f"item number {i}", "qty": i * 3, "price": i * 1.25}
        for i in range(8)
    ],
    "notes": "The quick brown fox jumps over the lazy dog. " * 6,
}
BODY = json.dumps(_DOC, separators=(",", ":")).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]
_NOT_ALLOWED = b'{"error":"method not allowed"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] in ("GET", "HEAD"):
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": BODY})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 405,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_NOT_ALLOWED)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _NOT_ALLOWED})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
