"""The judge server's door: token, body limit, metrics and disconnects, before any route runs.

A pure ASGI middleware, because each job must happen before the body reaches the app:

- **Token first.** Every path but ``/health`` needs the bearer token (``/docs``, ``/openapi.json``
  and unknown paths included), checked before a byte of the body is read, so a stranger gets 401
  and never makes the server parse anything.
- **Body limit while streaming.** A declared ``Content-Length`` over the limit is refused at
  once; a chunked body is counted as it arrives and refused the moment it passes the limit, so
  memory never holds more than the limit.
- **Metrics by route template** (``/get_reward``, or ``unmatched``), never by raw path, so 2,000
  made-up paths do not add 2,000 label sets; a route that raises is answered and counted as 500.
- **A client that goes away** cancels its request: the judging stops instead of running for
  nobody.

Every refusal has the server's one error shape, ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from cerm_reward.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""Paths answered without the token (a supervisor's liveness probe)."""


def error_body(message: str, details: list[str] | None = None) -> bytes:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return json.dumps(body, ensure_ascii=True).encode()


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer with ``{"error": message}`` (ASCII-escaped, so any text encodes)."""
    body = error_body(message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _token_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:]
    query = scope.get("query_string", b"").decode("latin-1")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "token":
            return unquote(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Guard:
    """Token, body limit, metrics and disconnect handling around the FastAPI app (see the module doc)."""

    def __init__(self, app: App, *, token: str | None, max_body_bytes: int, metrics: ServerMetrics) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_note)
        except Exception:  # a route that raised: answered here so it is counted and has the one shape
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not status:
                await send_error(send_and_note, 500, "internal server error (logged on the server)")
        route = scope.get("route")
        label = getattr(route, "path", None) or "unmatched"
        code = str(status[0]) if status else "499"  # nothing sent: the client went away first
        self.metrics.requests.labels(label, code).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            given = _token_of(scope)
            if not given:
                await send_error(send, 401, "missing bearer token: send 'Authorization: Bearer <token>' (or ?token=<token>)")
                return
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                await send_error(send, 401, "wrong bearer token")
                return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await send_error(send, 413, f"request body of {declared} bytes exceeds the limit of {self.max_body_bytes}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_error(send, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self._run_until_disconnect(scope, b"".join(chunks), receive, send)

    async def _run_until_disconnect(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Run the app on the buffered body; cancel it if the client disconnects first."""
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the app never needs more; the watcher below owns receive()
            raise AssertionError("unreachable")

        app = asyncio.ensure_future(self.app(scope, replay, send))
        watcher = asyncio.ensure_future(receive())  # after the whole body, only a disconnect arrives
        try:
            done, _ = await asyncio.wait({app, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if app not in done:
                logger.info("client left %s before its answer: request cancelled", scope.get("path"))
                app.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await app
                return
            app.result()  # the route's own error, if any
        finally:
            watcher.cancel()
            if not app.done():
                app.cancel()


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Access-log lines show ``?token=***``, never the token OpenRLHF puts in the URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1***", record.msg)
        return True
