"""ASGI middleware that rejects request bodies over a byte limit with 413, and bodies that do not arrive in time
with 408, before the app parses anything.

Library module of ``server/math``. uvicorn has no body-size limit and no body-read timeout, and FastAPI reads whole
JSON bodies into memory, so both limits are enforced here: the size by the declared ``Content-Length`` when there is
one and by counting the streamed bytes otherwise (chunked uploads); the time from the first ``receive`` to the last
body chunk. A client that declares 100 bytes and sends 10 would otherwise hold its connection (and a slot of
uvicorn's ``--limit-concurrency``) forever. The counted body is then replayed to the app.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # Ask the client to close: the rest of its oversized body is never read.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Wraps an ASGI app; HTTP requests whose body exceeds ``max_bytes`` get 413, and those whose body is not complete
    ``body_timeout_s`` seconds after the app first asks for it get 408; neither reaches the app."""

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float = 30.0):
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body exceeds {self.max_bytes} bytes; send fewer pairs per /verify request"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, "Content-Length must be a non-negative integer")
                return
            if int(declared) > self.max_bytes:
                await _send_error(send, 413, too_large)
                return
        chunks: list[bytes] = []
        received = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                detail = f"request body not received within {self.body_timeout_s:g} s; send the whole body at once"
                await _send_error(send, 408, detail)
                return
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body; nothing to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await _send_error(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only http.disconnect can come

        await self.app(scope, replay, send)
