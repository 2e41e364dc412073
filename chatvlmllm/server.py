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
import base64
import binascii
import contextlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatvlmllm.cache import EngineCache, default_cache
from chatvlmllm.catalog import ModelSpec
from chatvlmllm.context import overflow
from chatvlmllm.documents import MAX_UPLOAD_MB, load_document
from chatvlmllm.engines import AnswerStream, Engine, GenerationSettings, Message
from chatvlmllm.errors import DocumentError, OutOfMemoryError, UserError
from chatvlmllm.hardware import HardwareProfile, probe
from chatvlmllm.planner import LoadPlan, PlanOverrides, plan_load

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_TOKENS = 1024
MAX_IMAGES_PER_REQUEST = 16
# Answers waiting or running at once; beyond this the server says 429 instead of piling up threads.
MAX_PENDING = 64
DISCONNECT_POLL_S = 0.2
# A request body may carry a document at the upload limit as base64 (4/3 larger) plus the JSON around it.
MAX_BODY_BYTES = int(float(os.environ.get("CHATVLMLLM_MAX_REQUEST_MB", str(MAX_UPLOAD_MB * 4 / 3 + 4))) * 1e6)
# A client must send its whole body within this time (slow or lying clients hold no connection longer).
BODY_TIMEOUT_S = float(os.environ.get("CHATVLMLLM_BODY_TIMEOUT_S", "30"))
KEEP_ALIVE_S = 5


# -- request schema (the subset of the OpenAI chat-completions request we honour) -------------
class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI fields (user, seed, ...) are ignored

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = 1
    max_pixels: int | None = Field(default=None, ge=28 * 28)
    repetition_guard: bool = True


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.code, self.kind)


def error_response(status: int, message: str, code: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


# -- the door: body size and time limits, before parsing and before authentication ---------------
class BodyLimit:
    """ASGI middleware: read at most `max_bytes` of a request body, within `timeout_s`, before the app runs.

    A declared Content-Length over the limit is answered 413 at once, without reading the
    body; a body that grows past the limit is cut off with 413 at the limit; a client that
    does not send its declared body in time gets 408. In each case the connection is closed.
    The app then receives the body from memory, so nothing downstream waits on the client.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

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


# -- served models --------------------------------------------------------------------------
@dataclass
class ModelCounters:
    requests: int = 0
    active: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0


@dataclass
class ServedModel:
    spec: ModelSpec
    plan: LoadPlan
    counters: ModelCounters = field(default_factory=ModelCounters)

    @property
    def id(self) -> str:
        return self.spec.key


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    cache: EngineCache
    api_key: str | None
    max_pending: int
    started: int = field(default_factory=lambda: int(time.time()))
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self, served: ServedModel) -> Engine:
        return self.cache.get(served.spec, served.plan)


def plan_models(
    specs: Sequence[ModelSpec], hardware: HardwareProfile | None = None, overrides: PlanOverrides | None = None
) -> list[ServedModel]:
    """Plan every model with the same planner the app uses."""
    hardware = hardware or probe()
    return [ServedModel(spec, plan_load(hardware, spec, overrides)) for spec in specs]


# -- answers on their own thread ------------------------------------------------------------------
class ChunkPump:
    """Iterates an AnswerStream on a thread and hands its events to the event loop.

    A dedicated thread (not the shared thread pool) because a queued request blocks on the
    engine lock while the running one still needs to hand over its chunks.
    """

    def __init__(self, stream: AnswerStream, served: ServedModel, state: ServerState):
        self.stream, self.served, self.state = stream, served, state
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
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

    async def next_event(self) -> tuple[str, Any]:
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
            cancelled = self.stream.metrics is not None and self.stream.metrics.stopped_by == "cancelled"
            outcome = "cancelled" if cancelled or self.stream.cancel_event.is_set() else "completed"
            self._post("end", None)
        except BaseException as exc:  # whatever it is, the waiting client must get an answer
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


# -- request → engine input ---------------------------------------------------------------------
def decode_image_url(url: str, number: int, pages_left: int = MAX_IMAGES_PER_REQUEST) -> list:
    """A base64 data URL → page images (a PDF or multi-page TIFF gives several), at most `pages_left`."""
    label = f"image {number}"
    if not url.strip():
        raise ApiError(400, f"{label}: image_url.url is empty; send the image as a data URL", "missing_image_data")
    if url.startswith(("http://", "https://")):
        raise ApiError(
            400,
            f"{label}: only data URLs are accepted (data:image/png;base64,...); this server does not download images",
            "unsupported_image_url",
        )
    if not url.startswith("data:"):
        raise ApiError(
            400, f"{label}: image_url.url must be a data URL (data:image/png;base64,...)", "invalid_image_url"
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ApiError(
            400, f"{label}: the data URL must be base64-encoded (data:image/png;base64,...)", "invalid_image_url"
        )
    media_type = header[len("data:") : -len(";base64")]
    if media_type and not media_type.startswith("image/") and media_type != "application/pdf":
        raise ApiError(400, f"{label}: {media_type} is not an image", "invalid_image")
    payload = "".join(payload.split())  # some clients wrap base64 lines
    if not payload:
        raise ApiError(400, f"{label}: the data URL carries no image data", "missing_image_data")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{label}: the image data is not valid base64", "invalid_base64") from None
    try:
        document = load_document(data, label)
        if document.page_count > pages_left:  # refuse before rendering hundreds of pages
            raise ApiError(
                400,
                f"{label} has {document.page_count} pages; the limit is {MAX_IMAGES_PER_REQUEST} images (pages) "
                "per request",
                "too_many_images",
            )
        return document.pages()
    except DocumentError as exc:
        raise ApiError(400, str(exc), "invalid_image") from None


def to_messages(request: ChatCompletionRequest) -> list[Message]:
    messages: list[Message] = []
    image_count = 0
    for message in request.messages:
        role = "system" if message.role in ("system", "developer") else message.role
        if message.content is None or isinstance(message.content, str):
            messages.append(Message(role, message.content or ""))
            continue
        texts, images = [], []
        for part in message.content:
            if isinstance(part, TextPart):
                texts.append(part.text)
                continue
            if role != "user":
                raise ApiError(
                    400, f"only user messages can carry images, not {message.role} messages", "invalid_message"
                )
            image_count += 1
            pages_left = MAX_IMAGES_PER_REQUEST - sum(len(m.images) for m in messages) - len(images)
            images.extend(decode_image_url(part.image_url.url, image_count, pages_left))
        messages.append(Message(role, "\n".join(texts), images))
    if sum(len(m.images) for m in messages) > MAX_IMAGES_PER_REQUEST:
        raise ApiError(
            400, f"too many images (pages) in one request; the limit is {MAX_IMAGES_PER_REQUEST}", "too_many_images"
        )
    if not any(m.role == "user" for m in messages):
        raise ApiError(400, "the conversation needs at least one user message", "invalid_message")
    return messages


def to_settings(request: ChatCompletionRequest) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=request.temperature if request.temperature is not None else 0.0,  # greedy, as in the app
        top_p=request.top_p if request.top_p is not None else 1.0,
        repetition_guard=request.repetition_guard,
        max_pixels=request.max_pixels,
    )


# -- responses ----------------------------------------------------------------------------------
def finish_reason(stream: AnswerStream) -> str:
    return "length" if stream.metrics and stream.metrics.stopped_by == "max_tokens" else "stop"


def usage_of(stream: AnswerStream) -> dict[str, int]:
    prompt = (stream.metrics.prompt_tokens if stream.metrics else None) or 0
    completion = (stream.metrics.new_tokens if stream.metrics else None) or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def metrics_of(stream: AnswerStream) -> dict[str, Any]:
    metrics = stream.metrics.to_dict() if stream.metrics else {}
    extras = {k: v for k, v in stream.extras.items() if isinstance(v, str | int | float | bool | list | type(None))}
    return {**metrics, **extras}


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def engine_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, OutOfMemoryError):
        return ApiError(503, str(exc), "out_of_memory", "server_error")
    if isinstance(exc, DocumentError):  # an image the engine could not take is the request's fault
        return ApiError(400, str(exc), "invalid_image")
    if isinstance(exc, UserError):
        return ApiError(500, str(exc), "engine_error", "server_error")
    return ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", "internal_error", "server_error")


# -- the application ----------------------------------------------------------------------------
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
        too_long = await run_in_threadpool(overflow, served.spec, served.plan, messages, settings.max_new_tokens)
        if too_long:
            raise ApiError(400, too_long, "context_length_exceeded")
        try:
            engine = await run_in_threadpool(state.engine, served)
        except Exception as exc:
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


async def complete(
    pump: ChunkPump, first: tuple[str, Any], request: Request, completion_id: str, model_id: str
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
    }


async def stream_events(
    pump: ChunkPump, first: tuple[str, Any], completion_id: str, model_id: str, include_usage: bool
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
        yield chunk({}, finish_reason(stream), metrics=metrics_of(stream))
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


def validation_message(exc: RequestValidationError) -> str:
    """The most specific pydantic error, in words a client developer can act on."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    if any(e.get("type") == "json_invalid" for e in errors):
        return "the request body is not valid JSON"
    # Union members each report an error; the deepest location is the one that matters.
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    where = ".".join(str(part) for part in first.get("loc", ()) if not _is_type_label(part))
    if not where and first.get("type") in ("model_attributes_type", "dict_type"):
        return "the request body must be a JSON object (Content-Type: application/json)"
    message = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def _is_type_label(part: object) -> bool:
    """pydantic's names for union members ('str', 'list[...]') and the 'body' root are not fields."""
    return isinstance(part, str) and (part in ("body", "str", "int", "float", "bool") or "[" in part)


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


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nothing listens on right now (for tests, benchmarks and scripts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind((host, 0))
        return probe_socket.getsockname()[1]


@contextlib.contextmanager
def running_server(
    args: Sequence[str], port: int | None = None, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[str]:
    """Run `chatvlmllm serve ARGS` in a subprocess on 127.0.0.1; yield its base URL (…/v1); always stop it.

    The server's output goes to a temporary log that is shown when it fails to start.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "chatvlmllm", "serve", *args, "--host", DEFAULT_HOST, "--port", str(port)]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base_url = f"http://{DEFAULT_HOST}:{port}/v1"
            try:
                wait_until_ready(base_url, timeout_s, process)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                raise RuntimeError(f"{exc}; server output:\n{log.read()[-4000:]}") from None
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_ready(base_url: str, timeout_s: float = 60.0, process: Any = None) -> None:
    """Poll `/health` under `base_url` (with or without /v1) until the server answers.

    `process` (a subprocess.Popen) makes a server that died while starting fail at once.
    """
    root = base_url.rstrip("/").removesuffix("/v1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no answer from {root}/health within {timeout_s:g} s")
