"""The OpenAI chat-completions protocol as this server speaks it.

The request schema (the subset of the OpenAI request we honour), request → engine input
(messages, images from data URLs, generation settings), engine output → response fields
(usage, metrics, finish reason, server-sent events), and OpenAI-style errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatvlmllm.decisions import StopReason
from chatvlmllm.documents.loading import Document, load_document
from chatvlmllm.engines import AnswerStream, GenerationSettings, Message
from chatvlmllm.errors import ChatVlmError, DocumentError, OutOfMemoryError, UserError
from chatvlmllm.jsonable import json_extras

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 1024
MAX_IMAGES_PER_REQUEST = 16


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


# -- request → engine input ---------------------------------------------------------------------
def decode_image_url(
    url: str, number: int, pages_left: int = MAX_IMAGES_PER_REQUEST, document: Document | None = None
) -> list[Image.Image]:
    """A base64 data URL → page images (a PDF or multi-page TIFF gives several), at most `pages_left`.
    `document`: the URL's document when it was decoded already."""
    label = f"image {number}"
    document = document if document is not None else decode_document(url, number)
    try:
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


def decode_document(url: str, number: int) -> Document:
    """A base64 data URL → the document it carries (an image, a PDF, a multi-page TIFF), pages not rendered."""
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
        return load_document(data, label)
    except DocumentError as exc:
        raise ApiError(400, str(exc), "invalid_image") from None


def to_messages(request: ChatCompletionRequest, decoded: Mapping[int, Document] | None = None) -> list[Message]:
    """The request as engine messages, its images decoded into pages (`decoded`: image number → its document,
    for the images decoded already)."""
    decoded = decoded or {}
    messages: list[Message] = []
    image_count = 0
    for message in request.messages:
        role = "system" if message.role in ("system", "developer") else message.role
        if message.content is None or isinstance(message.content, str):
            messages.append(Message(role, message.content or ""))
            continue
        texts: list[str] = []
        images: list[Image.Image] = []
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
            images.extend(decode_image_url(part.image_url.url, image_count, pages_left, decoded.get(image_count)))
        messages.append(Message(role, "\n".join(texts), images))
    if sum(len(m.images) for m in messages) > MAX_IMAGES_PER_REQUEST:
        raise ApiError(
            400, f"too many images (pages) in one request; the limit is {MAX_IMAGES_PER_REQUEST}", "too_many_images"
        )
    if not any(m.role == "user" for m in messages):
        raise ApiError(400, "the conversation needs at least one user message", "invalid_message")
    return messages


def answer_budget(request: ChatCompletionRequest) -> int:
    """The answer's token limit: max_completion_tokens, else max_tokens, else our default."""
    return request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS


def to_settings(request: ChatCompletionRequest) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=answer_budget(request),
        temperature=request.temperature if request.temperature is not None else 0.0,  # greedy, as in the app
        top_p=request.top_p if request.top_p is not None else 1.0,
        repetition_guard=request.repetition_guard,
        max_pixels=request.max_pixels,
    )


# -- responses ----------------------------------------------------------------------------------
def finish_reason(stream: AnswerStream) -> str:
    return "length" if stream.metrics and stream.metrics.stopped_by == StopReason.MAX_TOKENS else "stop"


def usage_of(stream: AnswerStream) -> dict[str, int]:
    prompt = (stream.metrics.prompt_tokens if stream.metrics else None) or 0
    completion = (stream.metrics.new_tokens if stream.metrics else None) or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def metrics_of(stream: AnswerStream) -> dict[str, Any]:
    metrics = stream.metrics.to_dict() if stream.metrics else {}
    return {**metrics, **json_extras(stream.extras)}


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def is_server_fault(exc: BaseException) -> bool:
    """An engine failure or a bug, not the request's fault: worth a traceback in the log."""
    return not isinstance(exc, UserError)


def engine_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, OutOfMemoryError):
        return ApiError(503, str(exc), "out_of_memory", "server_error")
    if isinstance(exc, DocumentError):  # an image the engine could not take is the request's fault
        return ApiError(400, str(exc), "invalid_image")
    if isinstance(exc, ChatVlmError):  # an engine failure, or the engine refused what it was sent
        return ApiError(500, str(exc), "engine_error", "server_error")
    return ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", "internal_error", "server_error")


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
