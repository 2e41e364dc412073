"""Serving: what each route does, given the server's state (no FastAPI routing here).

The routes (`routes.py`) parse and authorize; these functions find the served model, turn a
request into engine input, start the answer on its own thread and hand back a whole completion
or a stream of server-sent events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from chatvlmllm.chat.context import overflow
from chatvlmllm.engines import Engine
from chatvlmllm.server.protocol import (
    ApiError,
    ChatCompletionRequest,
    answer_budget,
    engine_error,
    is_server_fault,
    to_messages,
    to_settings,
)
from chatvlmllm.server.served import ServedModel, ServerState
from chatvlmllm.server.streaming import ChunkPump, Event, complete, stream_events, watch_disconnect
from chatvlmllm.server.whole_document import asked_document, whole_document_answer

log = logging.getLogger(__name__)


# -- models -------------------------------------------------------------------------------------
def served_model(state: ServerState, model_id: str) -> ServedModel:
    served = state.models.get(model_id)
    if served is None:
        raise ApiError(
            404, f"the model {model_id!r} is not served here; served: {', '.join(state.models)}", "model_not_found"
        )
    return served


def model_card(state: ServerState, served: ServedModel) -> dict[str, Any]:
    return {"id": served.id, "object": "model", "created": state.started, "owned_by": "chatvlmllm"}


def model_list(state: ServerState) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(state, m) for m in state.models.values()]}


def server_stats(state: ServerState) -> dict[str, Any]:
    """Answers waiting or running, and per model its request counters, whether it is loaded and where."""
    loaded = {entry.model for entry in state.cache.loaded()}
    return {
        "pending": state.pending,
        "models": {
            key: {**asdict(m.counters), "loaded": key in loaded, "device": m.plan.device}
            for key, m in state.models.items()
        },
    }


# -- chat completions -----------------------------------------------------------------------------
async def chat_completion(state: ServerState, body: ChatCompletionRequest, request: Request) -> Any:
    """A whole completion, or a StreamingResponse of chunk events when the request says `stream`."""
    served = served_model(state, body.model)
    if body.n != 1:
        raise ApiError(400, "n must be 1: one answer per request", "invalid_request")
    pump = await start_answer(state, served, body)
    # Wait for the first event before answering, so that early failures get a real HTTP status.
    first = await first_event(pump, request)
    if first[0] == "error":
        raise engine_error(first[1])
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = stream_events(pump, first, completion_id, served.id, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return await complete(pump, first, request, completion_id, served.id)


async def start_answer(state: ServerState, served: ServedModel, body: ChatCompletionRequest) -> ChunkPump:
    """Decode the request, check it fits, load the engine and start the answer on its own thread.

    The decoded pages live in this frame and then in the engine's stream only, so they are
    released as soon as the answer ends, not when the response has been sent.
    """
    _refuse_when_busy(state)  # before reading a long document for an answer that would be refused
    asked = await run_in_threadpool(asked_document, body)
    whole = await run_in_threadpool(whole_document_answer, body, served.spec, asked)  # reads, indexes the document
    if whole is not None and whole.extractive:  # an offline engine: the passages, no engine to load
        _refuse_when_busy(state)
        return ChunkPump(whole.extractive_stream(served.id), served, state, whole).start()
    decoded = asked.decoded() if asked is not None else {}
    messages = whole.messages if whole is not None else await run_in_threadpool(to_messages, body, decoded)
    settings = to_settings(body)
    if whole is not None:
        settings.page_numbers = whole.page_numbers()
    too_long = await run_in_threadpool(overflow, served.spec, served.plan, messages, answer_budget(body))
    if too_long:
        raise ApiError(400, too_long, "context_length_exceeded")
    engine = await load_engine(state, served)
    _refuse_when_busy(state)
    return ChunkPump(engine.stream(messages, settings), served, state, whole).start()


def _refuse_when_busy(state: ServerState) -> None:
    if state.pending >= state.max_pending:
        raise ApiError(429, f"{state.pending} answers are already queued; try again later", "server_busy")


async def load_engine(state: ServerState, served: ServedModel) -> Engine:
    try:
        return await run_in_threadpool(state.engine, served)
    except Exception as exc:
        log.error("loading %s failed: %s", served.id, exc, exc_info=is_server_fault(exc))
        raise ApiError(503, f"{served.id} could not be loaded: {exc}", "model_unavailable", "server_error") from None


async def first_event(pump: ChunkPump, request: Request) -> Event:
    """The answer's first event; a client that leaves meanwhile cancels it."""
    watcher = asyncio.create_task(watch_disconnect(request, pump))
    try:
        return await pump.next_event()
    except BaseException:
        pump.cancel()
        raise
    finally:
        watcher.cancel()
