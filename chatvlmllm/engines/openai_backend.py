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
scans neither bloat the request nor overflow the server's maximum model length. Every
failure becomes an EngineError subclass with a message a person can act on, so the
fallback router moves on to the next (local) model.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from chatvlmllm.engines.base import BaseEngine, FamilyInfo, GenerationSettings, GenerationStats, Message
from chatvlmllm.errors import EngineError

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.planner import LoadPlan

FAMILIES = {
    "openai": FamilyInfo(
        "openai",
        "chatvlmllm.engines.openai_backend:OpenAIEngine",
        backend="openai",
        attention=(),
        capabilities=frozenset({"chat", "ocr"}),
        needs_weights=False,
        notes=("answers come from an OpenAI-compatible server; images are sent as data URLs",),
    ),
}

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_S = 120.0
# Pixel budgets when neither the entry nor the request sets one: Qwen-VL's default, and
# dots.ocr's own client maximum (dots_ocr/utils/consts.py MAX_PIXELS).
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
DOTS_MAX_PIXELS = 11_289_600
DOTS_IMAGE_FACTOR = 28

# dots.ocr's vLLM client puts this before its prompt; without it vLLM inserts its own image
# placeholder followed by "\n", which the model was not trained on (dots_ocr/model/inference.py).
DOTS_IMAGE_PREFIX = "<|img|><|imgpad|><|endofimg|>"
# dots.ocr's prompt modes (dots_ocr/utils/prompts.py), sent verbatim.
DOTS_PROMPTS = {
    "prompt_layout_all_en": """Please output the layout information from the PDF image, including each layout element's bbox, its category, and the corresponding text content within the bbox.

1. Bbox format: [x1, y1, x2, y2]

2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title'].

3. Text Extraction & Formatting Rules:
    - Picture: For the 'Picture' category, the text field should be omitted.
    - Formula: Format its text as LaTeX.
    - Table: Format its text as HTML.
    - All Others (Text, Title, etc.): Format their text as Markdown.

4. Constraints:
    - The output text must be the original text from the image, with no translation.
    - All layout elements must be sorted according to human reading order.

5. Final Output: The entire output must be a single JSON object.
""",  # noqa: E501
    "prompt_layout_only_en": """Please output the layout information from this PDF image, including each layout's bbox and its category. The bbox should be in the format [x1, y1, x2, y2]. The layout categories for the PDF document include ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title']. Do not output the corresponding text. The layout result should be in JSON format.""",  # noqa: E501
    "prompt_ocr": """Extract the text content from this image.""",
    "prompt_grounding_ocr": """Extract text from the given bounding box on the image (format: [x1, y1, x2, y2]).\nBounding Box:\n""",  # noqa: E501
}
LAYOUT_MODES = ("prompt_layout_all_en", "prompt_layout_only_en")
PROMPT_STYLES = ("plain", "dots_ocr")


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

    # -- loading ----------------------------------------------------------
    def _load(self, plan: LoadPlan) -> None:
        import openai

        spec = self.spec
        if not spec.base_url or not spec.served_model:
            raise EngineError(
                f"{spec.key}: an `openai` entry needs `base_url` (e.g. http://127.0.0.1:8000/v1) "
                f"and `served_model` (the name the server knows the model by)"
            )
        style = self.prompt_style
        if style not in PROMPT_STYLES:
            raise EngineError(f"{spec.key}: unknown prompt_style {style!r}; use one of {', '.join(PROMPT_STYLES)}")
        self.client = openai.OpenAI(
            base_url=spec.base_url,
            api_key=self._api_key(),
            timeout=self.timeout_s,
            # The fallback chain is the retry: a dead server should hand over at once.
            max_retries=int(spec.options.get("max_retries", 0)),
        )
        self._check_served_model()

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
    def prompt_style(self) -> str:
        return str(self.spec.options.get("prompt_style", "plain"))

    @property
    def timeout_s(self) -> float:
        return float(self.spec.options.get("timeout_s", DEFAULT_TIMEOUT_S))

    def pixel_budget(self, settings: GenerationSettings) -> int:
        fallback = DOTS_MAX_PIXELS if self.prompt_style == "dots_ocr" else DEFAULT_MAX_PIXELS
        return settings.max_pixels or (self.plan.max_pixels if self.plan else None) or fallback

    # -- the request --------------------------------------------------------
    def build_messages(self, messages: Sequence[Message], settings: GenerationSettings) -> tuple[list[dict], dict]:
        """Our conversation as OpenAI chat messages (the whole history), and what was sent."""
        budget = self.pixel_budget(settings)
        factor = DOTS_IMAGE_FACTOR if self.prompt_style == "dots_ocr" else 1
        prompt_mode = settings.options.get("prompt_mode") or self.spec.options.get("prompt_mode")
        if prompt_mode and prompt_mode not in DOTS_PROMPTS:
            raise EngineError(
                f"{self.spec.key}: unknown prompt_mode {prompt_mode!r}; use one of {', '.join(DOTS_PROMPTS)}"
            )
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        sent_sizes: list[list[int]] = []
        sent: dict[str, Any] = {"max_pixels": budget}
        converted = []
        for index, message in enumerate(messages):
            text = message.text
            if self.prompt_style == "dots_ocr" and prompt_mode and index == last_user:
                text = dots_prompt(prompt_mode, settings.options.get("bbox"))
            if not message.images:
                converted.append({"role": message.role, "content": text})
                continue
            parts: list[dict[str, Any]] = []
            for image in message.images:
                fitted = fit_to_budget(image, budget, factor)
                sent_sizes.append(list(fitted.size))
                if index == last_user and "original_size" not in sent:  # what layout boxes refer to
                    sent["original_size"], sent["input_size"] = list(image.size), list(fitted.size)
                parts.append({"type": "image_url", "image_url": {"url": png_data_url(fitted)}})
            if self.prompt_style == "dots_ocr":
                text = DOTS_IMAGE_PREFIX * len(message.images) + text
            parts.append({"type": "text", "text": text})
            converted.append({"role": message.role, "content": parts})
        sent["image_sizes"] = sent_sizes
        if self.prompt_style == "dots_ocr" and prompt_mode:
            sent["prompt_mode"] = prompt_mode
        return converted, sent

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        import openai

        chat, sent = self.build_messages(messages, settings)
        request: dict[str, Any] = {
            "model": self.spec.served_model,
            "messages": chat,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "stream": True,
        }
        if self.spec.options.get("stream_usage", True):
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
        if finish_reason:
            stats.extras["finish_reason"] = finish_reason
        if sent.get("prompt_mode") in LAYOUT_MODES and "input_size" in sent:
            from chatvlmllm.layout import layout_extras

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


def dots_prompt(mode: str, bbox: Sequence[int] | None = None) -> str:
    """dots.ocr's prompt for a mode; grounding OCR appends the box as its client does."""
    prompt = DOTS_PROMPTS[mode]
    if mode == "prompt_grounding_ocr":
        if not bbox or len(bbox) != 4:
            raise EngineError("prompt_grounding_ocr needs a bbox [x1, y1, x2, y2] in the options")
        prompt += str(list(bbox))
    return prompt


def fit_to_budget(image: Image.Image, max_pixels: int, factor: int = 1) -> Image.Image:
    """Downscale (never upscale) to at most `max_pixels`, keeping the aspect ratio.

    With factor 28 both sides become multiples of 28, as dots.ocr's client does, so that the
    server's processor keeps the size and layout boxes refer to the image that was sent.
    """
    width, height = image.size
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    new_w = max(factor, math.floor(width * scale / factor) * factor)
    new_h = max(factor, math.floor(height * scale / factor) * factor)
    if (new_w, new_h) == (width, height):
        return image
    from PIL import Image as PILImage

    return image.resize((new_w, new_h), PILImage.Resampling.BICUBIC)


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _stopped_by(finish_reason: str | None, cancel: threading.Event) -> str:
    if cancel.is_set():
        return "cancelled"
    return "max_tokens" if finish_reason == "length" else "eos"


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
