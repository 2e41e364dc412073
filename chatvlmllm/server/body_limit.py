"""The door: body size and time limits, before parsing and before authentication."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from chatvlmllm.settings import settings

log = logging.getLogger(__name__)


class BodyLimit:
    """ASGI middleware: read at most `max_bytes` of a request body, within `timeout_s`, before the app runs.

    A declared Content-Length over the limit is answered 413 at once, without reading the
    body; a body that grows past the limit is cut off with 413 at the limit; a client that
    does not send its declared body in time gets 408. In each case the connection is closed.
    The app then receives the body from memory, so nothing downstream waits on the client.
    """

    def __init__(self, app: Any, max_bytes: int | None = None, timeout_s: float | None = None):
        # A request body may carry a document at the upload limit as base64 (4/3 larger) plus the JSON
        # around it (`settings().max_body_bytes`); a client must send it within `body_timeout_s`.
        config = settings()
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else config.max_body_bytes
        self.timeout_s = timeout_s if timeout_s is not None else config.body_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, self._too_large(declared), "request_too_large")
            return
        if declared is None and not _is_chunked(scope):
            await self.app(scope, receive, send)  # no body (GET)
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except _BodyTooLarge as exc:
            await _refuse(send, 413, self._too_large(exc.size), "request_too_large")
            return
        except TimeoutError:
            await _refuse(send, 408, f"the request body did not arrive within {self.timeout_s:g} s", "request_timeout")
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Any) -> bytes:
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge(size)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def _too_large(self, size: int) -> str:
        return (
            f"the request body is {'over ' if size <= self.max_bytes * 2 else ''}{size / 1e6:,.0f} MB; "
            f"the limit is {self.max_bytes / 1e6:,.0f} MB"
        )


class _BodyTooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


class _ClientGone(Exception):
    pass


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", []) if key.lower() == name), None)


def _content_length(scope: dict[str, Any]) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


def _is_chunked(scope: dict[str, Any]) -> bool:
    return b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


async def _refuse(send: Any, status: int, message: str, code: str) -> None:
    payload = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
