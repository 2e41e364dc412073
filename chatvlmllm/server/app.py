"""An OpenAI-compatible HTTP server over the local engines (`chatvlmllm serve`).

    GET  /v1/models              the served models (ids = catalog keys, or folder names)
    GET  /v1/models/{id}
    POST /v1/chat/completions    streaming (SSE) and not; images as base64 data URLs
    GET  /health                 readiness, plus per-model request counters

The same planner and the same process-wide EngineCache as the app and the CLI: each model
loads once, and its engine lock serialises generation, so concurrent requests queue. Every
answer is produced on its own thread and handed to the event loop chunk by chunk, so a
long generation never blocks other requests. A client that disconnects cancels its
generation. Images must be `data:` URLs: the server never fetches remote URLs (it makes
no outbound connections). Errors are OpenAI-style JSON, `{"error": {"message", "type",
"code"}}`, with 4xx for bad requests; the server stays up.

Extensions to the protocol (optional request fields): `max_pixels` (pixel budget per
image) and `repetition_guard` (default true). Responses carry a `metrics` object (model,
attention, dtype, device, ttft_s, total_s, stopped_by, ...) beside `usage`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatvlmllm.chat.context import overflow
from chatvlmllm.chat.engine_cache import EngineCache, default_cache
from chatvlmllm.errors import DocumentError
from chatvlmllm.server.body_limit import BodyLimit
from chatvlmllm.server.protocol import (
    ApiError,
    ChatCompletionRequest,
    answer_budget,
    engine_error,
    error_response,
    is_server_fault,
    to_messages,
    to_settings,
    validation_message,
)
from chatvlmllm.server.served import ServedModel, ServerState
from chatvlmllm.server.streaming import ChunkPump, complete, stream_events, watch_disconnect

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Answers waiting or running at once; beyond this the server says 429 instead of piling up threads.
MAX_PENDING = 64
KEEP_ALIVE_S = 5


def create_app(
    models: Sequence[ServedModel],
    *,
    api_key: str | None = None,
    cache: EngineCache | None = None,
    max_pending: int = MAX_PENDING,
) -> FastAPI:
    state = ServerState(
        models={m.id: m for m in models},
        cache=cache or default_cache(),
        api_key=api_key or None,
        max_pending=max_pending,
    )
    app = FastAPI(title="chatvlmllm", summary="OpenAI-compatible API over local vision-language models")
    app.state.chatvlmllm = state
    app.add_middleware(BodyLimit)  # outermost: before routing, parsing and the API key

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(exc), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RecursionError):  # JSON nested thousands of levels deep
            return error_response(400, "the request body is nested too deeply", "invalid_request")
        if isinstance(exc, DocumentError):
            return error_response(400, str(exc), "invalid_image")
        log.exception("unexpected error")
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error", "server_error")

    def require_api_key(request: Request) -> None:
        if state.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), state.api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_api_key")

    authorized = [Depends(require_api_key)]

    def served_model(model_id: str) -> ServedModel:
        served = state.models.get(model_id)
        if served is None:
            raise ApiError(
                404, f"the model {model_id!r} is not served here; served: {', '.join(state.models)}", "model_not_found"
            )
        return served

    def model_card(served: ServedModel) -> dict[str, Any]:
        return {"id": served.id, "object": "model", "created": state.started, "owned_by": "chatvlmllm"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        loaded = {entry.model for entry in state.cache.loaded()}
        return {
            "status": "ok",
            "pending": state.pending,
            "models": {
                key: {**asdict(m.counters), "loaded": key in loaded, "device": m.plan.device}
                for key, m in state.models.items()
            },
        }

    @app.get("/v1/models", dependencies=authorized)
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(m) for m in state.models.values()]}

    @app.get("/v1/models/{model_id:path}", dependencies=authorized)
    async def get_model(model_id: str) -> dict[str, Any]:
        return model_card(served_model(model_id))

    @app.post("/v1/chat/completions", dependencies=authorized)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        served = served_model(body.model)
        if body.n != 1:
            raise ApiError(400, "n must be 1: one answer per request", "invalid_request")
        messages = await run_in_threadpool(to_messages, body)  # image decoding is CPU work
        settings = to_settings(body)
        too_long = await run_in_threadpool(overflow, served.spec, served.plan, messages, answer_budget(body))
        if too_long:
            raise ApiError(400, too_long, "context_length_exceeded")
        try:
            engine = await run_in_threadpool(state.engine, served)
        except Exception as exc:
            log.error("loading %s failed: %s", served.id, exc, exc_info=is_server_fault(exc))
            raise ApiError(
                503, f"{served.id} could not be loaded: {exc}", "model_unavailable", "server_error"
            ) from None
        if state.pending >= state.max_pending:
            raise ApiError(429, f"{state.pending} answers are already queued; try again later", "server_busy")
        pump = ChunkPump(engine.stream(messages, settings), served, state).start()
        watcher = asyncio.create_task(watch_disconnect(request, pump))
        try:
            # Wait for the first event before answering, so that early failures get a real HTTP status.
            first = await pump.next_event()
        except BaseException:
            pump.cancel()
            raise
        finally:
            watcher.cancel()
        if first[0] == "error":
            raise engine_error(first[1])
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = stream_events(pump, first, completion_id, served.id, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return await complete(pump, first, request, completion_id, served.id)

    return app


# -- running ------------------------------------------------------------------------------------
def run_server(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_S,  # idle connections (slow clients between requests) are closed
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers: no megabyte headers
    )
