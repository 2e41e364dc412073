"""Fallback router: try a chain of models until one gives a usable answer.

It moves on when a model fails to load, raises (CUDA OOM after one retry with half the
pixel budget), answers nothing but whitespace or special tokens, or trips the repetition
guard. Every attempt is recorded (model, outcome, reason, seconds) with the answer.

Streaming stays with the caller: iterating a `RoutedAnswer` yields one AnswerStream per
engine that got to answer; the caller shows it (st.write_stream, stdout) and the router
judges it once consumed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from chatvlmllm import i18n
from chatvlmllm.chat.conversation import attempt_reason
from chatvlmllm.chat.engine_cache import EngineCache, default_cache
from chatvlmllm.decisions import AttemptOutcome, StopReason
from chatvlmllm.engines import AnswerMetrics, AnswerStream, Engine, GenerationSettings, Message
from chatvlmllm.errors import ChatVlmError, OutOfMemoryError, UserError
from chatvlmllm.i18n import N_, _, ngettext  # reasons are stored in English; marked ones show with _()
from chatvlmllm.models.catalog import ModelSpec, load_catalog
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.planner import LoadPlan, PlanOverrides, plan_load
from chatvlmllm.models.tasks import OFFLINE_FALLBACK, offline_engine_for
from chatvlmllm.models.weights import weights_problem
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

DEFAULT_CHAIN = ("dots_ocr", "qwen_vl_2b", OFFLINE_FALLBACK)
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|<pad>|<unk>")


@dataclass
class Attempt:
    model: str
    outcome: AttemptOutcome
    reason: str = ""  # English, as stored
    seconds: float = 0.0
    reason_message: dict[str, Any] | None = None  # the reason as an i18n.Message (`to_dict`), where it is one

    def to_dict(self) -> dict[str, Any]:
        stored = asdict(self)
        if self.reason_message is None:  # a reason in a library's own words: the English is all there is
            del stored["reason_message"]
        return stored

    def reason_text(self) -> str:
        """The reason in the current language where it was a message of ours, else as stored."""
        return attempt_reason(self.to_dict())


def is_empty_answer(text: str) -> bool:
    return not _SPECIAL_TOKEN.sub("", text).strip()


def fallback_chain() -> tuple[str, ...]:
    """The configured default chain: $CHATVLMLLM_FALLBACK ("a,b,c") or DEFAULT_CHAIN."""
    return configured_chain() or DEFAULT_CHAIN


def configured_chain() -> tuple[str, ...]:
    """The chain $CHATVLMLLM_FALLBACK names ("a,b,c"), or () when it names none."""
    configured = settings().fallback
    return tuple(k.strip() for k in configured.split(",") if k.strip())


def chain_for(
    question: str, hardware: HardwareProfile, catalog: Mapping[str, ModelSpec], language: str | None = None
) -> tuple[str, ...]:
    """Fallbacks for this request: $CHATVLMLLM_FALLBACK when set, else the task-aware ranking
    (models whose weights are here, best for the request's task first, then the offline engines)."""
    from chatvlmllm.models.choice import choose

    return configured_chain() or choose(question, hardware, catalog, language).chain


def planned_chain(
    question: str,
    first: ModelSpec,
    hardware: HardwareProfile,
    catalog: Mapping[str, ModelSpec],
    fallback: bool = True,
    language: str | None = None,
) -> list[ModelSpec]:
    """The models that get to answer `question`, in order: the chosen one, then (with `fallback`) the
    fallbacks for its task."""
    chain_keys = chain_for(question, hardware, catalog, language) if fallback else ()
    return build_chain(first, fallback=fallback, catalog=dict(catalog), chain_keys=chain_keys, language=language)


def first_ready(chain: Sequence[ModelSpec], ready: Callable[[str], bool]) -> ModelSpec | None:
    """The model of `chain` that will really answer: the first that is `ready` here (the router skips the
    others at once, see `_cannot_load`); None when none is."""
    return next((spec for spec in chain if ready(spec.key)), None)


@dataclass
class RoutedAnswer:
    """Iterate for the AnswerStreams; afterwards read text, model, metrics and attempts."""

    chain: list[ModelSpec]
    messages: list[Message]
    settings: GenerationSettings
    hardware: HardwareProfile
    overrides: PlanOverrides
    cache: EngineCache
    attempts: list[Attempt] = field(default_factory=list)
    text: str = ""
    model: str | None = None
    plan: LoadPlan | None = None
    metrics: AnswerMetrics | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    current: ModelSpec | None = None  # the model being tried now
    on_load: Callable[[ModelSpec], None] | None = None  # told before a model loads (not when it is cached)

    def __iter__(self) -> Generator[AnswerStream, None, None]:
        for index, spec in enumerate(self.chain):
            self.current = spec
            ready = self._engine_for(spec, first=index == 0)
            if ready is None:
                continue
            engine, plan = ready
            settings = self.settings
            for retry in (False, True):
                started = time.perf_counter()
                stream = engine.stream(self.messages, settings)
                # Errors end the stream quietly for the caller displaying it; judged below.
                stream.raise_errors = False
                try:
                    yield stream
                    stream.consume()  # whatever the caller left unread
                    if stream.error is not None:
                        raise stream.error
                except OutOfMemoryError as exc:
                    if retry:
                        self._record(spec, AttemptOutcome.ERROR, _reason(exc), time.perf_counter() - started)
                        break
                    budget = (settings.max_pixels or plan.max_pixels or 1_000_000) // 2
                    self._record(
                        spec,
                        AttemptOutcome.OOM_RETRY,
                        f"out of memory; retrying with max_pixels={budget:,}",
                        time.perf_counter() - started,
                    )
                    settings = replace(settings, max_pixels=budget)
                    continue
                except Exception as exc:
                    self._record(spec, AttemptOutcome.ERROR, _reason(exc), time.perf_counter() - started, exc)
                    break
                elapsed = time.perf_counter() - started
                metrics = stream.metrics
                if metrics and metrics.stopped_by == StopReason.CANCELLED:
                    self._accept(spec, plan, stream, N_("stopped by the user"), elapsed)
                    return
                if metrics and metrics.stopped_by == StopReason.REPETITION:
                    self._record(spec, AttemptOutcome.REPETITION, N_("the answer started repeating itself"), elapsed)
                    self._keep_best(spec, plan, stream)
                    break
                if is_empty_answer(stream.text):
                    self._record(spec, AttemptOutcome.EMPTY, N_("the answer was empty"), elapsed)
                    break
                self._accept(spec, plan, stream, "", elapsed)
                return
        if self.model is None:
            self.error = self._failure_summary()

    def _engine_for(self, spec: ModelSpec, first: bool) -> tuple[Engine, LoadPlan] | None:
        """The engine of `spec` and its plan, loaded now or already; None (recorded as an attempt) when it
        is known not to load here or its load failed."""
        # The user's overrides apply to the model they chose; fallbacks plan on their own.
        plan = plan_load(self.hardware, spec, self.overrides if first else PlanOverrides())
        loaded = self.cache.peek(spec, plan) is not None
        problem = None if loaded else _cannot_load(spec, plan)
        if problem is not None:  # known not to load here: never a load that can only fail
            self._record(spec, AttemptOutcome.SKIPPED, problem, 0.0)
            return None
        if self.on_load is not None and not loaded:
            self.on_load(spec)
        started = time.perf_counter()
        try:
            return self.cache.get(spec, plan), plan
        except Exception as exc:
            self._record(spec, AttemptOutcome.LOAD_FAILED, _reason(exc), time.perf_counter() - started, exc)
            return None

    def _failure_summary(self) -> str:
        """Why nothing answered. When a model read the page and found nothing, that is the news:
        other models' load failures are counted, not listed."""
        empty = [a.model for a in self.attempts if a.outcome == AttemptOutcome.EMPTY]
        # In the language of the session asking (the error is saved with the answer as written).
        if not empty:
            reasons = " ".join(f"{a.model}: {a.reason_text()}." for a in self.attempts if a.reason)
            return f"{_('No model could answer.')} {reasons}"
        others = {a.model for a in self.attempts if a.outcome in (AttemptOutcome.LOAD_FAILED, AttemptOutcome.SKIPPED)}
        found = _("No text found: {models} read the page and returned nothing (is it blank?).").format(
            models=", ".join(empty)
        )
        if not others:
            return found
        note = ngettext(
            "({count} other model could not run here.)", "({count} other models could not run here.)", len(others)
        )
        return f"{found} {note.format(count=len(others))}"

    def _record(
        self,
        spec: ModelSpec,
        outcome: AttemptOutcome,
        reason: str | i18n.Message,
        seconds: float,
        error: Exception | None = None,
    ) -> None:
        stored = reason.to_dict() if isinstance(reason, i18n.Message) else None
        english = reason.english if isinstance(reason, i18n.Message) else reason
        self.attempts.append(Attempt(spec.key, outcome, english, round(seconds, 3), stored))
        if error is not None and is_engine_fault(error):
            # A bug must not hide behind the fallback: the next model answers, the log keeps the traceback.
            log.error("attempt %s: %s after %.2f s: %s", spec.key, outcome, seconds, english, exc_info=error)
            return
        log.info("attempt %s: %s after %.2f s%s", spec.key, outcome, seconds, f" ({english})" if english else "")

    def _accept(self, spec: ModelSpec, plan: LoadPlan, stream: AnswerStream, reason: str, seconds: float) -> None:
        self._record(spec, AttemptOutcome.ANSWERED, reason, seconds)
        self.text, self.model, self.plan = stream.text, spec.key, plan
        self.metrics, self.extras = stream.metrics, stream.extras

    def _keep_best(self, spec: ModelSpec, plan: LoadPlan, stream: AnswerStream) -> None:
        """A looping answer is still better than none if nothing later answers."""
        if self.model is None and not self.text:
            self.text, self.plan, self.metrics, self.extras = stream.text, plan, stream.metrics, stream.extras

    def consume(self) -> RoutedAnswer:
        for stream in self:
            stream.consume()
        return self

    @property
    def fell_back(self) -> bool:
        return any(a.outcome != AttemptOutcome.ANSWERED for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "model": self.model,
            "attempts": [a.to_dict() for a in self.attempts],
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "error": self.error,
        }


def _cannot_load(spec: ModelSpec, plan: LoadPlan) -> str | i18n.Message | None:
    """Why `spec` cannot load here before trying (the plan cannot run, its weights are not on disk), or None."""
    if not plan.runnable:
        return plan.why_not_message() or ""
    return weights_problem(spec)


def is_engine_fault(exc: BaseException) -> bool:
    """An error that is the engine's fault (a bug, a broken checkpoint), not the user's set-up
    (weights not downloaded, a plan that cannot run) nor the GPU's memory (retried smaller)."""
    cause: BaseException | None = exc
    while cause is not None:  # an engine wraps what it could not load (weights not on disk) in an EngineError
        if isinstance(cause, UserError | OutOfMemoryError):
            return False
        cause = cause.__cause__
    return True


def _reason(exc: BaseException) -> str | i18n.Message:
    # Stored with the answer in English, and as its Message where it was raised with one (shown translated).
    if isinstance(exc, ChatVlmError) and len(exc.args) == 1 and isinstance(exc.args[0], i18n.Message):
        return exc.args[0]
    detail = " ".join((exc.english if isinstance(exc, ChatVlmError) else str(exc)).split()).strip(" .")
    if isinstance(exc, ChatVlmError) and detail:
        return detail
    return f"{type(exc).__name__}: {detail}" if detail else f"{type(exc).__name__} (the engine gave no details)"


def build_chain(
    first: ModelSpec | None,
    fallback: bool = True,
    catalog: dict[str, ModelSpec] | None = None,
    chain_keys: Sequence[str] | None = None,
    language: str | None = None,
) -> list[ModelSpec]:
    """The chosen model first, then the configured chain (models not in the catalog are skipped,
    and so are models that need remote code: those run only when chosen).

    With the document's `language` (ISO 639-1), the offline engine that reads it best goes in
    just before rapidocr (e.g. tesseract for "ru": rapidocr's bundled models have no Cyrillic).
    """
    catalog = catalog if catalog is not None else load_catalog()
    chain = [first] if first is not None else []
    keys = list(chain_keys or fallback_chain())
    if language:
        best = offline_engine_for(language)
        if best not in keys:
            at = keys.index(OFFLINE_FALLBACK) if OFFLINE_FALLBACK in keys else len(keys)
            keys.insert(at, best)
    if fallback or first is None:
        for key in keys:
            if key in catalog and all(spec.key != key for spec in chain):
                if catalog[key].trust_remote_code:
                    continue  # remote code runs only for a model the user chose, never as a silent fallback
                chain.append(catalog[key])
    return chain


def answer(
    messages: Sequence[Message],
    chain: Sequence[ModelSpec],
    hardware: HardwareProfile,
    settings: GenerationSettings | None = None,
    overrides: PlanOverrides | None = None,
    cache: EngineCache | None = None,
) -> RoutedAnswer:
    """A routed answer, ready to iterate (or `.consume()`)."""
    return RoutedAnswer(
        chain=list(chain),
        messages=list(messages),
        settings=settings or GenerationSettings(),
        hardware=hardware,
        overrides=overrides or PlanOverrides(),
        cache=cache or default_cache(),
    )
