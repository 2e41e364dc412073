"""`chatvlmllm serve`: an OpenAI-compatible HTTP server over the local engines.

    protocol        the request schema, request → engine input, response fields, errors
    routes          the HTTP routes: module-level APIRouters, the API key, `attach_routers(app)`
    serving         what the routes do: models, stats, a chat completion from request to answer
    error_handlers  every failure as OpenAI-style JSON: `install_error_handlers(app)`
    body_limit      the door: request body size and time limits (ASGI middleware)
    memory          freed memory handed back to the system once a request has ended
    served          the served models, their counters, the shared state
    streaming       answers on their own thread, relayed whole or as server-sent events
    app             `create_app` (the FastAPI application from those parts) and `run_server`

Test and benchmark helpers that start a server live in `chatvlmllm.devtools.servers`.
"""

from chatvlmllm.server.app import DEFAULT_HOST, DEFAULT_PORT, MAX_PENDING, create_app, run_server
from chatvlmllm.server.body_limit import BodyLimit
from chatvlmllm.server.protocol import (
    DEFAULT_MAX_TOKENS,
    MAX_IMAGES_PER_REQUEST,
    ApiError,
    ChatCompletionRequest,
    decode_image_url,
    to_messages,
    to_settings,
)
from chatvlmllm.server.served import ModelCounters, ServedModel, ServerState, plan_models
from chatvlmllm.server.streaming import ChunkPump

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PORT",
    "MAX_IMAGES_PER_REQUEST",
    "MAX_PENDING",
    "ApiError",
    "BodyLimit",
    "ChatCompletionRequest",
    "ChunkPump",
    "ModelCounters",
    "ServedModel",
    "ServerState",
    "create_app",
    "decode_image_url",
    "plan_models",
    "run_server",
    "to_messages",
    "to_settings",
]
