"""The one small protocol every engine speaks, and what an answer carries.

An engine is made from a catalog entry, loads a plan once, then streams answers to a
conversation (messages with images). `BaseEngine` does the bookkeeping every family
shares (one generation at a time, timings, metrics, cancel) so an adapter only writes
`_load` and `_generate`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from chatvlmllm import i18n
from chatvlmllm.decisions import StopReason
from chatvlmllm.i18n import N_, _, format_number, lazy_message, lazy_plural

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.catalog import ModelSpec
    from chatvlmllm.models.planner import LoadPlan


@dataclass
class Message:
    """One turn of a conversation as engines see it."""

    role: str  # "system" | "user" | "assistant"
    text: str
    images: list[Image.Image] = field(default_factory=list)


def latest_user_images(messages: Sequence[Message]) -> list[Image.Image]:
    """The images of the latest user message that has any: the document being discussed
    (follow-up questions usually carry none)."""
    for message in reversed(messages):
        if message.role == "user" and message.images:
            return list(message.images)
    return []


def latest_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


def fit_to_budget(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale (never upscale) to at most `max_pixels`, keeping the aspect ratio."""
    width, height = image.size
    if not max_pixels or width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    from PIL import Image as PILImage

    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    return image.resize(size, PILImage.Resampling.BICUBIC)


DEFAULT_MAX_NEW_TOKENS = 1024
# Why a generation stopped, in words (marked here, translated where shown; metrics keep the enum's value).
STOP_WORDS = {
    StopReason.EOS: N_("finished"),
    StopReason.MAX_TOKENS: N_("token limit"),
    StopReason.REPETITION: N_("repeating itself"),
    StopReason.CANCELLED: N_("stopped by you"),
    StopReason.ERROR: N_("error"),
}


# The offline OCR readers by their own names (extras["pages"][i]["engine"] holds the key).
READER_NAMES = {"rapidocr": "RapidOCR", "tesseract": "Tesseract"}


def reader_name(engine: str) -> str:
    return READER_NAMES.get(engine, engine)


def reader_summary(pages: Sequence[dict[str, Any]], language: str | None = None) -> str:
    """Which engine read the pages, in words and in `language` (by default the interface's): "Read by
    Tesseract: the page is in Cyrillic script, which RapidOCR's models do not read."

    One page: the engine and why. Several: which pages each engine read (the reasons stay per page
    in extras["pages"], so a long PDF does not get a paragraph of them).
    """
    if not pages:
        return ""
    if len(pages) == 1:
        page = pages[0]
        engine = reader_name(page["engine"])
        reason = i18n.Message(str(page["reason"]))  # the reasons are marked where they are given
        if page["cached"]:
            said = lazy_message("Read by {engine} (from the OCR cache): {reason}.", engine=engine, reason=reason)
        else:
            said = lazy_message("Read by {engine}: {reason}.", engine=engine, reason=reason)
        return said.render(language)
    by_engine: dict[str, list[str]] = {}
    for page in pages:
        by_engine.setdefault(reader_name(page["engine"]), []).append(str(page["page"]))
    parts = [
        lazy_plural(
            "page {pages} by {engine}",
            "pages {pages} by {engine}",
            len(numbers),
            pages=", ".join(numbers),
            engine=label,
        )
        for label, numbers in by_engine.items()
    ]
    listed = "; ".join(part.render(language) for part in parts)
    return lazy_message("Read {parts}.", parts=listed).render(language)


def stop_words(reason: StopReason | str) -> str:
    """Why a generation stopped, in the interface language."""
    return _(STOP_WORDS[StopReason(reason)]) if reason in set(StopReason) else str(reason)


@dataclass
class GenerationSettings:
    # None: the user set no limit, so the model's own default applies (DEFAULT_MAX_NEW_TOKENS,
    # or a longer one for whole-page transcriptions: GOT-OCR 4096, dots.ocr 8192).
    max_new_tokens: int | None = None
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_guard: bool = True
    # Pixel budget for this answer; None uses the plan's.
    max_pixels: int | None = None
    # One request's options over the catalog entry's (e.g. GOT-OCR "format", the offline OCR "lang"). The
    # answering engine reads the keys its family declares, typed (`<Family>Options.of`); the others are for
    # other families of the fallback chain, and a key that no family declares is refused.
    options: dict[str, Any] = field(default_factory=dict)
    # The document's page numbers of the latest question's images, when the caller knows them:
    # engines that label pages use them ("All pages" after page 3 is 1, 2, 3, not positions).
    page_numbers: tuple[int, ...] = ()

    def budget(self, model_default: int = DEFAULT_MAX_NEW_TOKENS) -> int:
        """max_new_tokens for this answer: the user's when set, else the model's default."""
        return self.max_new_tokens if self.max_new_tokens is not None else model_default


@dataclass(frozen=True)
class Progress:
    """A step of a long answer, for the display: "Reading page 2 of 3…".

    An engine yields one from `_generate` when a step starts (it is not text: the stream keeps
    it in `AnswerStream.progress` and passes only text on). `at` is when the step started, so a
    display can tell the elapsed time and estimate the rest once a step is done.
    """

    done: int  # steps finished before this one
    total: int
    unit: str = "page"
    at: float = field(default_factory=time.perf_counter)


@dataclass
class GenerationStats:
    """What `_generate` reports when it finishes."""

    stopped_by: StopReason = StopReason.EOS
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # time.perf_counter() when the first new token existed; text can lag it (partial words).
    first_token_at: float | None = None


@dataclass
class AnswerMetrics:
    model: str
    family: str
    attention: str
    dtype: str
    device: str
    quantization: str | None
    load_s: float
    ttft_s: float | None
    total_s: float
    prompt_tokens: int | None
    new_tokens: int | None
    tokens_per_s: float | None
    peak_vram_mb: float | None
    stopped_by: StopReason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def caption(self) -> str:
        """ "model · sdpa · 2.31 s · 12.5 tok/s", in the interface language."""
        parts = [self.model, self.attention if self.attention != "n/a" else self.device]
        parts.append(_("{seconds} s").format(seconds=format_number(self.total_s, 2)))
        if self.tokens_per_s:
            parts.append(_("{rate} tok/s").format(rate=format_number(self.tokens_per_s, 1)))
        if self.stopped_by != StopReason.EOS:
            parts.append(_("stopped: {reason}").format(reason=stop_words(self.stopped_by)))
        return " · ".join(parts)


class AnswerStream:
    """Iterate to receive text chunks; afterwards `.text`, `.metrics` and `.extras` are set.

    Closing the iterator early (a user pressing stop, a client disconnecting) cancels the
    generation and releases the engine. An engine error is raised to the reader, unless
    `raise_errors` is off (the fallback router's streams): then the stream just ends and
    `.error` holds the exception for the router to judge.
    """

    def __init__(self, chunks: Generator[str | Progress, None, GenerationStats], finish: Callable[..., AnswerMetrics]):
        self._chunks = chunks
        self._finish = finish
        self._cancel = threading.Event()
        self.text = ""
        self.metrics: AnswerMetrics | None = None
        self.extras: dict[str, Any] = {}
        self.error: Exception | None = None
        self.progress: Progress | None = None  # the engine's latest step report, if it gives any
        self.raise_errors = True
        self._started = time.perf_counter()
        self._ttft: float | None = None

    @property
    def cancel_event(self) -> threading.Event:
        return self._cancel

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[str]:
        if self.metrics is not None:
            # Already finished (the router consumes after the caller displayed it): keep the real metrics.
            return
        stats: GenerationStats | None = None
        failed = False
        try:
            while True:
                try:
                    chunk = next(self._chunks)
                except StopIteration as stop:
                    stats = stop.value or GenerationStats()
                    break
                if isinstance(chunk, Progress):
                    self.progress = chunk
                    continue
                if not chunk:
                    continue
                if self._ttft is None:
                    self._ttft = time.perf_counter() - self._started
                self.text += chunk
                yield chunk
        except Exception as exc:
            failed = True
            self.error = exc
            if self.raise_errors:
                raise
        finally:
            if stats is None:  # closed early or failed: stop the generation behind us
                self._cancel.set()
                self._chunks.close()
                stats = GenerationStats(stopped_by=StopReason.ERROR if failed else StopReason.CANCELLED)
            elif self._cancel.is_set():
                stats.stopped_by = StopReason.CANCELLED
            if stats.first_token_at is not None:
                self._ttft = max(0.0, stats.first_token_at - self._started)
            self.extras = stats.extras
            self.metrics = self._finish(stats, self._ttft, time.perf_counter() - self._started)

    def consume(self) -> str:
        """Run to the end and return the whole text."""
        for _chunk in self:
            pass
        return self.text


class Engine(Protocol):
    """The protocol: load a plan; stream an answer to a conversation with images."""

    spec: ModelSpec
    plan: LoadPlan | None
    load_s: float

    def load(self, plan: LoadPlan) -> None: ...

    def stream(self, messages: Sequence[Message], settings: GenerationSettings | None = None) -> AnswerStream: ...

    def unload(self) -> None: ...


class BaseEngine:
    """Shared bookkeeping; subclasses implement `_load(plan)` and `_generate(...)`."""

    # False: one generation at a time per engine (a local model's weights and KV cache are one
    # resource). An engine whose backend queues and batches by itself (a remote server) sets True.
    concurrent_generation: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.plan: LoadPlan | None = None
        self.load_s = 0.0
        self.lock = threading.Lock()  # held by a generation (unless concurrent) and by unloading

    # -- subclass hooks -------------------------------------------------
    def _load(self, plan: LoadPlan) -> None:
        raise NotImplementedError

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str | Progress, None, GenerationStats]:
        raise NotImplementedError

    def _unload(self) -> None:
        pass

    def memory_mb(self) -> float | None:
        """Memory held by the loaded weights, when the engine can tell."""
        return None

    def _reset_peak_memory(self) -> None:
        pass

    def _peak_memory_mb(self) -> float | None:
        return None

    def loaded_plan(self) -> LoadPlan:
        """The plan this engine was loaded with (generation code runs only after `load`)."""
        if self.plan is None:
            raise RuntimeError(f"engine {self.spec.key} is not loaded")
        return self.plan

    # -- protocol -------------------------------------------------------
    def load(self, plan: LoadPlan) -> None:
        started = time.perf_counter()
        self._load(plan)
        self.plan = plan
        self.load_s = time.perf_counter() - started

    def unload(self) -> None:
        with self.lock:
            self._unload()
            self.plan = None

    def stream(self, messages: Sequence[Message], settings: GenerationSettings | None = None) -> AnswerStream:
        if self.plan is None:
            raise RuntimeError(f"engine {self.spec.key} is not loaded")
        settings = settings or GenerationSettings()
        answer: AnswerStream

        def chunks() -> Generator[str | Progress, None, GenerationStats]:
            with contextlib.nullcontext() if self.concurrent_generation else self.lock:
                if answer.cancel_event.is_set():  # stopped while queued: skip the prefill entirely
                    return GenerationStats(stopped_by=StopReason.CANCELLED)
                self._reset_peak_memory()
                return (yield from self._generate(list(messages), settings, answer.cancel_event))

        def finish(stats: GenerationStats, ttft: float | None, total: float) -> AnswerMetrics:
            return self._metrics(stats, ttft, total)

        answer = AnswerStream(chunks(), finish)
        return answer

    def _metrics(self, stats: GenerationStats, ttft: float | None, total: float) -> AnswerMetrics:
        plan = self.plan
        tokens_per_s = None
        if stats.new_tokens and total > 0:
            # Decode rate after the first token, the figure users compare between setups.
            decode_time = total - (ttft or 0.0)
            tokens_per_s = (stats.new_tokens - 1) / decode_time if stats.new_tokens > 1 and decode_time > 0 else None
        return AnswerMetrics(
            model=self.spec.key,
            family=self.spec.family,
            attention=plan.attention if plan else "n/a",
            dtype=plan.dtype if plan else "n/a",
            device=plan.device if plan else "n/a",
            quantization=plan.quantization if plan else None,
            load_s=round(self.load_s, 4),
            ttft_s=round(ttft, 4) if ttft is not None else None,
            total_s=round(total, 4),
            prompt_tokens=stats.prompt_tokens,
            new_tokens=stats.new_tokens,
            tokens_per_s=round(tokens_per_s, 2) if tokens_per_s else None,
            peak_vram_mb=self._peak_memory_mb(),
            stopped_by=stats.stopped_by,
        )
