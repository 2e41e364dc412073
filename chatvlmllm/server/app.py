"""The FastAPI application of `chatvlmllm serve`: an OpenAI-compatible HTTP server over the local engines.

The routes are in `routes.py`, what they do in `serving.py`, the request and response shapes in
`protocol.py`, the error answers in `error_handlers.py`.

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

import logging
from collections.abc import Sequence

from fastapi import FastAPI

from chatvlmllm.chat.engine_cache import EngineCache, default_cache
from chatvlmllm.server.body_limit import BodyLimit
from chatvlmllm.server.error_handlers import install_error_handlers
from chatvlmllm.server.memory import ReleaseMemoryAfterRequest
from chatvlmllm.server.routes import attach_routers
from chatvlmllm.server.served import ServedModel, ServerState

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
    """The application serving `models`; with `api_key`, every route but /health needs it."""
    # FastAPI's own /docs, /redoc and /openapi.json would answer without the key: routes.py serves them.
    app = FastAPI(
        title="chatvlmllm",
        summary="OpenAI-compatible API over local vision-language models",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.chatvlmllm = ServerState(
        models={m.id: m for m in models},
        cache=cache or default_cache(),
        api_key=api_key or None,
        max_pending=max_pending,
    )
    app.add_middleware(BodyLimit)  # before routing, parsing and the API key
    app.add_middleware(ReleaseMemoryAfterRequest)  # outermost: runs once the request, body and all, is gone
    install_error_handlers(app)
    attach_routers(app)
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
