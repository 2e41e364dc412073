"""The HTTP routes, one `APIRouter` per concern at module level; `attach_routers(app)` mounts them.

    GET  /health                 "ok" once the server answers (no key: load balancers and start-up probes)
    GET  /v1/models              the served models (ids = catalog keys, or folder names)
    GET  /v1/models/{id}
    POST /v1/chat/completions    streaming (SSE) and not; images as base64 data URLs
    GET  /stats                  answers pending, per-model request counters, loaded or not
    GET  /docs, /openapi.json    the API's own documentation (Swagger UI, the OpenAPI schema)

Every route but /health needs the API key when the server has one. The handlers reach the
server's state through the `server_state` dependency (`app.state.chatvlmllm`), never a closure.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from chatvlmllm.server import serving
from chatvlmllm.server.protocol import ApiError, ChatCompletionRequest
from chatvlmllm.server.served import ServerState

OPENAPI_URL = "/openapi.json"


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.chatvlmllm
    return state


State = Annotated[ServerState, Depends(server_state)]


async def require_api_key(request: Request, state: State) -> None:
    if state.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), state.api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_api_key")


AUTHORIZED = [Depends(require_api_key)]

health_router = APIRouter()
models_router = APIRouter(prefix="/v1", dependencies=AUTHORIZED)
chat_router = APIRouter(prefix="/v1", dependencies=AUTHORIZED)
stats_router = APIRouter(dependencies=AUTHORIZED)
docs_router = APIRouter(dependencies=AUTHORIZED, include_in_schema=False)


@health_router.get("/health")
async def health() -> dict[str, str]:
    """Says only that the server is up: what it serves and how busy it is need the key (/stats)."""
    return {"status": "ok"}


@models_router.get("/models")
async def list_models(state: State) -> dict[str, Any]:
    return serving.model_list(state)


@models_router.get("/models/{model_id:path}")
async def get_model(model_id: str, state: State) -> dict[str, Any]:
    return serving.model_card(state, serving.served_model(state, model_id))


@chat_router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State) -> Any:
    return await serving.chat_completion(state, body, request)


@stats_router.get("/stats")
async def stats(state: State) -> dict[str, Any]:
    return serving.server_stats(state)


@docs_router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    # The schema goes inline (Swagger UI's `spec`): the page's own script could not send the key
    # when it fetched /openapi.json.
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - Swagger UI",
        swagger_ui_parameters={"spec": request.app.openapi()},
    )


ROUTERS = (health_router, models_router, chat_router, stats_router, docs_router)


def attach_routers(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
