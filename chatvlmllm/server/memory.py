"""Giving memory back to the system once a request has ended.

A request's decoded pages (a 79 MP scan is 79 MB as greyscale, 237 MB as RGB, plus the copies the
processor makes) are freed when the answer ends: no PIL image, tensor or buffer over 1 MB is left
alive. Yet glibc keeps the freed heap mapped: measured with the 79 MP page
(benchmarks/serve_memory.py, 2 cores), the server kept +5 to +512 MB above its level before the
request, varying by run and by request. `malloc_trim(0)` after each request hands those free pages
back (within ±3 MB of the level before; a trim costs about 10 ms after a large page, 0.1 ms
otherwise). Elsewhere than glibc (macOS, musl) this is a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the C library this process already uses
    except (OSError, AttributeError):
        return None
    return trim


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the system; True where the C library can."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class ReleaseMemoryAfterRequest:
    """ASGI middleware: once a request with a body (a chat completion) has ended, give freed memory back.

    Outermost, so that the request body the door (BodyLimit) buffered is released too. The trim runs on
    a worker thread: it walks the whole heap, and the event loop keeps serving meanwhile.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "POST":
            await asyncio.to_thread(release_freed_memory)
