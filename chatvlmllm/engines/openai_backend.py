"""Models behind an OpenAI-compatible server (vLLM, SGLang, Ollama, `chatvlmllm serve`).

A catalog entry names the server and the model it serves:

    [models.dots_vllm]
    backend = "openai"
    base_url = "http://127.0.0.1:8000/v1"
    served_model = "rednote-hilab/dots.ocr"
    api_key_env = "VLLM_API_KEY"    # optional; default OPENAI_API_KEY, else "EMPTY" (vLLM without --api-key)
    prompt_style = "dots_ocr"       # optional: dots.ocr's own client conventions
    prompt_mode = "prompt_ocr"      # optional, dots_ocr style only: always send this dots.ocr prompt
    timeout_s = 300                 # optional; per request
    max_pixels = 1003520            # optional; pixel budget per image sent

Images travel as base64 PNG data URLs, downscaled to the pixel budget here so that large
scans neither bloat the request nor overflow the server's maximum model length. The whole
conversation is sent, except with `prompt_style = "dots_ocr"`: that follows dots.ocr's own
vLLM client (one page, its prompt after the `<|img|><|imgpad|><|endofimg|>` prefix, the page
resized to multiples of 28 by its smart_resize) and chooses the prompt exactly as the local
dots.ocr engine does, so both give the same `extras["layout"]`. Every failure becomes an
EngineError subclass with a message a person can act on, so the fallback router moves on to
the next (local) model.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from chatvlmllm.decisions import Backend, StopReason
from chatvlmllm.engines._dots_prompts import FREE_QUESTION, DotsRequestOptions, answer_budget, choose_prompt, dots_page
from chatvlmllm.engines.base import (
    BaseEngine,
    GenerationSettings,
    GenerationStats,
    Message,
    fit_to_budget,
    latest_user_text,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import FamilyInfo

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.planner import LoadPlan


DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_S = 120.0
# Pixel budgets when neither the entry nor the request sets one: Qwen-VL's default, and
# dots.ocr's own client maximum (dots_ocr/utils/consts.py MAX_PIXELS).
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
DOTS_MAX_PIXELS = 11_289_600
# dots.ocr's vLLM client puts this before its prompt; without it vLLM inserts its own image
# placeholder followed by "\n", which the model was not trained on (dots_ocr/model/inference.py).
DOTS_IMAGE_PREFIX = "<|img|><|imgpad|><|endofimg|>"
PromptStyle = Literal["plain", "dots_ocr"]


class OpenAIOptions(DotsRequestOptions):
    """What an `openai` entry may set; with prompt_style = "dots_ocr" also dots.ocr's own request options."""

    prompt_style: PromptStyle = Field(
        "plain",
        description="plain: the whole conversation, images as data URLs; dots_ocr: dots.ocr's own client "
        "conventions (one page, its prompts).",
    )
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="Seconds one request may take.")
    max_retries: int = Field(
        0, ge=0, strict=True, description="Retries of a failed request (0: the fallback chain is the retry)."
    )
    stream_usage: bool = Field(
        True,
        description="Ask the server for token counts (stream_options.include_usage); false for servers that refuse it.",
    )


class RemoteServerError(EngineError):
    """The OpenAI-compatible server could not give an answer."""


class ServerUnavailableError(RemoteServerError):
    """Nothing answers at the base URL (connection refused, DNS, network)."""


class ServerTimeoutError(RemoteServerError):
    """The server did not answer within the timeout."""


class RemoteRequestError(RemoteServerError):
    """The server rejected the request (4xx)."""


class PromptTooLongError(RemoteRequestError):
    """The prompt (mostly image tokens) exceeds the server's maximum model length."""


class RemoteInternalError(RemoteServerError):
    """The server failed while answering (5xx)."""


class OpenAIEngine(BaseEngine):
    """Streams answers from a model served over the OpenAI chat-completions protocol."""

    client: Any = None
    # The server batches and queues; the openai client is thread-safe. Serialising here would
    # turn every concurrent caller of one cached engine into a queue on this side.
    concurrent_generation = True

    # -- loading ----------------------------------------------------------
    def _load(self, plan: LoadPlan) -> None:
        import openai

        spec = self.spec
        if not spec.base_url or not spec.served_model:
            raise EngineError(
                f"{spec.key}: an `openai` entry needs `base_url` (e.g. http://127.0.0.1:8000/v1) "
                f"and `served_model` (the name the server knows the model by)"
            )
        self.client = openai.OpenAI(
            base_url=spec.base_url,
            api_key=self._api_key(),
            timeout=self.options.timeout_s,
            max_retries=self.options.max_retries,
        )
        try:
            self._check_served_model()
        except Exception:
            # The router retries the load on the next question: don't leave a client per try.
            self.client.close()
            self.client = None
            raise

    def _api_key(self) -> str:
        explicit = self.spec.api_key_env
        key = os.environ.get(explicit or DEFAULT_API_KEY_ENV)
        if key:
            return key
        if explicit:
            raise EngineError(
                f"{self.spec.key}: set the API key in ${explicit} (named by `api_key_env` in the catalog)"
            )
        return "EMPTY"  # vLLM started without --api-key accepts any key

    def _check_served_model(self) -> None:
        """Fail at load, not at the first question, when the server is down or lacks the model."""
        import openai

        try:
            served = [model.id for model in self.client.models.list(timeout=min(self.timeout_s, 10.0))]
        except openai.NotFoundError:
            return  # a server without /models: the first request will tell
        except openai.OpenAIError as exc:
            raise self.describe_error(exc) from exc
        if served and self.spec.served_model not in served:
            raise RemoteRequestError(
                f"{self.spec.key}: the server at {self.spec.base_url} does not serve {self.spec.served_model!r}; "
                f"it serves {', '.join(served)}. Fix `served_model` in the catalog."
            )

    def _unload(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    # -- entry options ------------------------------------------------------
    @property
    def options(self) -> OpenAIOptions:
        return OpenAIOptions.of(self.spec.options)

    @property
    def prompt_style(self) -> PromptStyle:
        return self.options.prompt_style

    @property
    def timeout_s(self) -> float:
        return self.options.timeout_s

    def pixel_budget(self, settings: GenerationSettings) -> int:
        fallback = DOTS_MAX_PIXELS if self.prompt_style == "dots_ocr" else DEFAULT_MAX_PIXELS
        return settings.max_pixels or (self.plan.max_pixels if self.plan else None) or fallback

    # -- the request --------------------------------------------------------
    def build_request(self, messages: Sequence[Message], settings: GenerationSettings) -> tuple[list[dict], dict, int]:
        """(OpenAI chat messages, what was sent, max_tokens) for this conversation."""
        if self.prompt_style == "dots_ocr":
            return self._dots_request(messages, settings)
        budget = self.pixel_budget(settings)
        sent: dict[str, Any] = {"max_pixels": budget, "image_sizes": []}
        converted: list[dict[str, Any]] = []
        for message in messages:
            if not message.images:
                converted.append({"role": message.role, "content": message.text})
                continue
            parts: list[dict[str, Any]] = []
            for image in message.images:
                fitted = fit_to_budget(image, budget)
                sent["image_sizes"].append(list(fitted.size))
                parts.append(image_part(fitted))
            parts.append({"type": "text", "text": message.text})
            converted.append({"role": message.role, "content": parts})
        return converted, sent, settings.budget()

    def _dots_request(self, messages: Sequence[Message], settings: GenerationSettings) -> tuple[list[dict], dict, int]:
        """One page and dots.ocr's prompt, as its vLLM client sends them (no history: it reads pages)."""
        from PIL import Image as PILImage

        from chatvlmllm.documents.layout import DOTS_MIN_PIXELS, model_input_size

        options = OpenAIOptions.of(self.spec.options, settings.options)
        page = dots_page(messages, options)
        budget = self.pixel_budget(settings)
        # dots.ocr's smart_resize: sides in multiples of 28 within [min, max] pixels. The server's
        # processor then keeps the size, so layout boxes come back in this image's pixels.
        width, height = page.size
        input_size = model_input_size(width, height, min(DOTS_MIN_PIXELS, budget), budget)
        sent_page = page if page.size == input_size else page.resize(input_size, PILImage.Resampling.BICUBIC)
        mode, prompt = choose_prompt(latest_user_text(messages), options, page.size, input_size)
        max_tokens = settings.budget() if mode == FREE_QUESTION else answer_budget(mode, settings, options)
        content = [image_part(sent_page), {"type": "text", "text": DOTS_IMAGE_PREFIX + prompt}]
        sent = {
            "max_pixels": budget,
            "image_sizes": [list(input_size)],
            "original_size": list(page.size),
            "input_size": list(input_size),
            "prompt_mode": mode,
        }
        return [{"role": "user", "content": content}], sent, max_tokens

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        import openai

        chat, sent, max_tokens = self.build_request(messages, settings)
        request: dict[str, Any] = {
            "model": self.spec.served_model,
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "stream": True,
        }
        if self.options.stream_usage:
            request["stream_options"] = {"include_usage": True}
        usage = None
        finish_reason = None
        text = []
        try:
            stream = self.client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise self.describe_error(exc) from exc
        try:
            for chunk in stream:
                if cancel.is_set():
                    break
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        text.append(piece)
                        yield piece
        except openai.OpenAIError as exc:
            raise self.describe_error(exc) from exc
        except Exception as exc:  # the connection dropped mid-answer (httpx read/protocol errors)
            raise self.describe_error(exc) from exc
        finally:
            stream.close()  # tells the server to stop generating when we stop early

        stats = GenerationStats(stopped_by=_stopped_by(finish_reason, cancel))
        if usage is not None:
            stats.prompt_tokens = usage.prompt_tokens
            stats.new_tokens = usage.completion_tokens
        stats.extras = {"server": self.spec.base_url, "served_model": self.spec.served_model, **sent}
        if max_tokens != settings.budget():
            stats.extras["max_new_tokens"] = max_tokens
        if finish_reason:
            stats.extras["finish_reason"] = finish_reason
        if sent.get("prompt_mode") in ("prompt_layout_all_en", "prompt_layout_only_en"):
            from chatvlmllm.documents.layout import layout_extras

            # Boxes come in pixels of the image sent; the layout view wants them on the original page.
            stats.extras["layout"] = layout_extras(
                "".join(text), tuple(sent["original_size"]), tuple(sent["input_size"]), sent["prompt_mode"]
            )
        return stats

    # -- errors -------------------------------------------------------------
    def describe_error(self, exc: BaseException) -> RemoteServerError:
        """A human message for what went wrong talking to the server."""
        import openai

        key, url = self.spec.key, self.spec.base_url
        if isinstance(exc, openai.APITimeoutError) or "timeout" in type(exc).__name__.lower():
            return ServerTimeoutError(
                f"{key}: the server at {url} did not answer within {self.timeout_s:g} s. It may be overloaded; "
                f"raise `timeout_s` in the catalog entry or lower the pixel budget."
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return ServerUnavailableError(
                f"{key}: cannot reach the server at {url} ({_first_line(cause)}). Is it running? "
                f"Start it with `vllm serve ...` or `chatvlmllm serve`, or fix `base_url` in the catalog."
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return RemoteInternalError(f"{key}: the server at {url} failed while answering: {exc.message}")
        return ServerUnavailableError(f"{key}: the connection to {url} broke while answering ({_first_line(exc)}).")

    def _status_error(self, exc: Any) -> RemoteServerError:
        key, url, status = self.spec.key, self.spec.base_url, exc.status_code
        detail = _server_message(exc)
        if status in (401, 403):
            env = self.spec.api_key_env or DEFAULT_API_KEY_ENV
            return RemoteRequestError(
                f"{key}: the server at {url} refused the API key ({status}: {detail}). Set ${env}."
            )
        if status == 404:
            return RemoteRequestError(
                f"{key}: the server at {url} has no model {self.spec.served_model!r} ({detail}). "
                f"Fix `served_model` in the catalog."
            )
        if status == 400 and _is_too_long(detail):
            return PromptTooLongError(
                f"{key}: the prompt is longer than the server's maximum model length ({detail}). Images take most "
                f"of it: use a smaller pixel budget (--max-pixels, or `max_pixels` in the catalog entry) or fewer "
                f"pages, or restart the server with a larger --max-model-len."
            )
        if status >= 500:
            return RemoteInternalError(f"{key}: the server at {url} failed with HTTP {status}: {detail}")
        return RemoteRequestError(f"{key}: the server at {url} rejected the request (HTTP {status}): {detail}")


def image_part(image: Image.Image) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": png_data_url(image)}}


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _stopped_by(finish_reason: str | None, cancel: threading.Event) -> StopReason:
    if cancel.is_set():
        return StopReason.CANCELLED
    return StopReason.MAX_TOKENS if finish_reason == "length" else StopReason.EOS


def _server_message(exc: Any) -> str:
    # The client hands over the inner {"message", "type", "code"} object of an OpenAI-style error.
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return _first_line(exc.message)


_TOO_LONG_MARKERS = ("maximum context length", "max_model_len", "maximum model length", "context length", "too long")


def _is_too_long(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _TOO_LONG_MARKERS)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


FAMILIES = {
    "openai": FamilyInfo(
        "openai",
        OpenAIEngine,
        backend=Backend.OPENAI,
        attention=(),
        capabilities=frozenset({"chat", "ocr"}),
        needs_weights=False,
        notes=(N_("answers come from an OpenAI-compatible server; images are sent as data URLs"),),
        options=OpenAIOptions,
    ),
}
