"""Every failure answered as OpenAI-style JSON (`{"error": {"message", "type", "code"}}`).

`install_error_handlers(app)` registers one handler per kind of failure: our own `ApiError`,
a request that does not fit the schema, a routing error (404, 405) and anything unexpected
(500, with the traceback in the log). The server stays up whatever a request does.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatvlmllm.errors import DocumentError
from chatvlmllm.server.protocol import ApiError, error_response, validation_message

log = logging.getLogger(__name__)


async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(400, validation_message(exc), "invalid_request")


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")


async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RecursionError):  # JSON nested thousands of levels deep
        return error_response(400, "the request body is nested too deeply", "invalid_request")
    if isinstance(exc, DocumentError):
        return error_response(400, str(exc), "invalid_image")
    log.exception("unexpected error")
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error", "server_error")


HANDLERS = (
    (ApiError, api_error),
    (RequestValidationError, invalid_request),
    (StarletteHTTPException, http_error),
    (Exception, unexpected),
)


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in HANDLERS:
        app.exception_handler(kind)(handler)
