"""The WebSocket benchmark backend: one ~200-byte JSON answer per message, at once
(`{"type": "flood", "n": N}`: N small ones).

    python -m uvicorn benchmarks.ws_app:app --host 127.0.0.1 --port 3000 --log-level warning

Used as both primary and candidate (identical answers: every conversation matches).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_PAD = "x" * 120


async def talk(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            message = json.loads(await ws.receive_text())
            if message.get("type") == "flood":  # n small messages at once (a memory test)
                for i in range(int(message["n"])):
                    await ws.send_text(f'{{"type": "tock", "n": {i}}}')
                continue
            await ws.send_text(json.dumps({"type": "tock", "n": message.get("n"), "pad": _PAD}))
    except (WebSocketDisconnect, ValueError):
        pass


app = Starlette(routes=[WebSocketRoute("/ws", talk)])
