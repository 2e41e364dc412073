"""Answers on their own thread, handed to the event loop chunk by chunk.

`ChunkPump` runs an engine's AnswerStream on a dedicated thread; `complete` collects a
whole answer, `stream_events` relays it as OpenAI chunk events. A client that goes away
cancels the generation.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from chatvlmllm.decisions import StopReason
from chatvlmllm.engines import AnswerStream
from chatvlmllm.server.protocol import engine_error, finish_reason, is_server_fault, metrics_of, sse, usage_of
from chatvlmllm.server.served import ServedModel, ServerState
from chatvlmllm.server.whole_document import CITATIONS_FIELD, WholeDocumentAnswer

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.2

# What the answer's thread hands over: ("chunk", text), ("end", None) or ("error", exception).
Event = tuple[str, Any]


class ChunkPump:
    """Iterates an AnswerStream on a thread and hands its events to the event loop.

    A dedicated thread (not the shared thread pool) because a queued request blocks on the
    engine lock while the running one still needs to hand over its chunks.
    """

    def __init__(
        self, stream: AnswerStream, served: ServedModel, state: ServerState, whole: WholeDocumentAnswer | None = None
    ):
        self.stream, self.served, self.state = stream, served, state
        self.whole = whole  # a question over a whole document: its answer carries citations
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chatvlmllm-answer-{served.id}", daemon=True)

    def start(self) -> ChunkPump:
        with self.state.lock:
            self.state.pending += 1
            self.served.counters.requests += 1
            self.served.counters.active += 1
        self._thread.start()
        return self

    def cancel(self) -> None:
        if not self.finished.is_set():
            self.stream.cancel()

    async def next_event(self) -> Event:
        return await self.events.get()

    def _post(self, kind: str, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.stream.cancel()

    def _run(self) -> None:
        outcome = "failed"
        try:
            for chunk in self.stream:
                if self.stream.cancel_event.is_set():
                    break
                self._post("chunk", chunk)
            cancelled = self.stream.metrics is not None and self.stream.metrics.stopped_by == StopReason.CANCELLED
            outcome = "cancelled" if cancelled or self.stream.cancel_event.is_set() else "completed"
            self._post("end", None)
        except BaseException as exc:  # whatever it is, the waiting client must get an answer
            if is_server_fault(exc):  # the client gets one line; the log keeps the traceback
                log.exception("answering with %s failed", self.served.id)
            self._post("error", exc)
        finally:
            with self.state.lock:
                self.state.pending -= 1
                counters = self.served.counters
                counters.active -= 1
                setattr(counters, outcome, getattr(counters, outcome) + 1)
            self.finished.set()


async def watch_disconnect(request: Request, pump: ChunkPump) -> None:
    """Cancel the generation when the client goes away while we are not sending."""
    while not pump.finished.is_set():
        if await request.is_disconnected():
            pump.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def complete(
    pump: ChunkPump, first: Event, request: Request, completion_id: str, model_id: str
) -> dict[str, Any]:
    watcher = asyncio.create_task(watch_disconnect(request, pump))
    try:
        event = first
        while event[0] == "chunk":
            event = await pump.next_event()
    finally:
        watcher.cancel()
        pump.cancel()  # no-op when finished
    if event[0] == "error":
        raise engine_error(event[1])
    await asyncio.to_thread(pump.finished.wait)  # metrics are set once the thread is done
    stream = pump.stream
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": stream.text},
                "finish_reason": finish_reason(stream),
                "logprobs": None,
            }
        ],
        "usage": usage_of(stream),
        "metrics": metrics_of(stream),
        **await citations_of(pump),
    }


async def citations_of(pump: ChunkPump) -> dict[str, Any]:
    """The extension field of an answer over a whole document (checking a model's citations reads the index)."""
    if pump.whole is None:
        return {}
    return {CITATIONS_FIELD: await asyncio.to_thread(pump.whole.citations, pump.stream.text)}


async def stream_events(
    pump: ChunkPump, first: Event, completion_id: str, model_id: str, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events in the OpenAI chunk format, ending with `data: [DONE]`."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
            **extra,
        }
        if include_usage:
            data.setdefault("usage", None)
        return sse(data)

    try:
        yield chunk({"role": "assistant", "content": ""})
        event = first
        while event[0] == "chunk":
            yield chunk({"content": event[1]})
            event = await pump.next_event()
        if event[0] == "error":
            error = engine_error(event[1])
            # The status line is long gone: report the failure as an error event, as vLLM does.
            yield sse({"error": {"message": error.message, "type": error.kind, "code": error.code}})
            return
        await asyncio.to_thread(pump.finished.wait)
        stream = pump.stream
        yield chunk({}, finish_reason(stream), metrics=metrics_of(stream), **await citations_of(pump))
        if include_usage:
            yield sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model_id,
                    "choices": [],
                    "usage": usage_of(stream),
                }
            )
        yield sse("[DONE]")
    finally:
        pump.cancel()  # the client went away (or we are done: then it is a no-op)
