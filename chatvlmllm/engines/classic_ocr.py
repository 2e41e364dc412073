"""Offline OCR engines behind the engine protocol: `ocr_auto` (the embedded default), RapidOCR and Tesseract.

None needs a GPU or a download: RapidOCR's PP-OCR models ship inside the `rapidocr` wheel and
run on onnxruntime; Tesseract is the Debian binary (`tesseract-ocr`, `tesseract-ocr-rus`). They
transcribe; they cannot answer questions, and say so instead of pretending (chatvlmllm.engines._ocr_answers
holds what each kind of request gets).

Measured on ../shared/eval (docs/benchmark.md): RapidOCR reads receipts, tables and charts
better; Tesseract reads prose pages (columns) and Russian; `ocr_auto` probes each page's script
and layout and hands it to the better one. The readers, their speed settings and the per-page
choice live in `_ocr_readers`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from chatvlmllm.decisions import Backend, StopReason, Task
from chatvlmllm.documents.ocr_cache import default_ocr_cache, page_key
from chatvlmllm.documents.reading_order import TextBox, lines_text
from chatvlmllm.engines._ocr_answers import compose
from chatvlmllm.engines._ocr_readers import (
    DEFAULT_RAPID_PARAMS,
    TESSERACT_INSTALL,
    Cancelled,
    Detection,
    RapidReader,
    Reader,
    Script,
    ScriptGuess,
    TesseractReader,
    choose_reader,
    page_layout,
    probe_script,
    tesseract_problem,
)
from chatvlmllm.engines.base import (
    BaseEngine,
    GenerationSettings,
    GenerationStats,
    Message,
    Progress,
    fit_to_budget,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.models.families import FamilyInfo, Options
from chatvlmllm.models.tasks import OCR_TRANSCRIBES, OFFLINE_AUTO, classify

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.planner import LoadPlan

log = logging.getLogger(__name__)

__all__ = ["TESSERACT_INSTALL", "tesseract_problem"]

AUTO = OFFLINE_AUTO
# ISO 639-1 → Tesseract's traineddata names.
TESSERACT_LANGUAGES = {"en": "eng", "ru": "rus"}
# Part of the OCR cache key: bump when a change makes the engines return different text.
OCR_SETTINGS_VERSION = 2


class ClassicOcrOptions(Options):
    """What an offline OCR entry (or one answer) may set."""

    lang: str | None = Field(
        None,
        description="The document's language, ISO 639-1 (en, ru); unset: Tesseract reads every installed "
        "language it knows (eng+rus). Models files may still spell it `language`, its old name.",
    )
    ocr_cache: bool = Field(True, description="false: read the page again even when its text is in the OCR cache.")
    reader_note: bool = Field(True, description='false: no "(Read by ...)" line under the text.')
    rapidocr_params: dict[str, Any] | None = Field(
        None,
        description="Passed to RapidOCR over the tuned settings (detector limits, threads, ...); "
        'e.g. { "Det.limit_side_len" = 960 }.',
    )

    @model_validator(mode="before")
    @classmethod
    def _old_language_key(cls, data: Any) -> Any:
        """`language` was a second name for `lang`: a models file that still uses it reads as before."""
        if not isinstance(data, dict) or "language" not in data:
            return data
        renamed = {key: value for key, value in data.items() if key != "language"}
        if "lang" in data and data["lang"] != data["language"]:
            raise ValueError("set `lang` only (`language` is its old name, and the two differ here)")
        _warn_old_language_key()
        renamed.setdefault("lang", data["language"])
        return renamed


@functools.cache
def _warn_old_language_key() -> None:
    # Once per process: the app reads the models file on every rerun.
    log.warning("the offline OCR option `language` is now called `lang`; rename it in your models file")


def _offline_family(name: str, engine: type[ClassicOcrEngine], note: str, **extra: Any) -> FamilyInfo:
    """What every bundled OCR engine shares: CPU only, no weights to fetch, no attention to plan."""
    return FamilyInfo(
        name,
        engine,
        backend=Backend.CLASSIC,
        options=ClassicOcrOptions,
        attention=(),
        capabilities=frozenset({"ocr"}),
        needs_weights=False,
        notes=(note,),
        **extra,
    )


class ClassicOcrEngine(BaseEngine):
    """Shared behaviour: pages in, text in reading order out, line boxes in extras["lines"].

    Each page is read once per engine settings: results are kept in the OCR cache (memory and
    the chat store's file, chatvlmllm.documents.ocr_cache), so a follow-up about the same page, a reloaded
    chat or a restarted app does not OCR it again. Cancelling stops between pages and between
    recognition chunks (RapidOCR) or kills the Tesseract process.
    """

    def _read_page(self, image: Image.Image, language: str | None, cancel: threading.Event) -> PageReading:
        raise NotImplementedError

    def _language_note(self, language: str | None) -> str | None:
        return None

    def _cache_settings(self, language: str | None, budget: int | None) -> dict[str, Any]:
        return {"engine": self.spec.family, "lang": language or "", "budget": budget, "version": OCR_SETTINGS_VERSION}

    def _cached_read(
        self, image: Image.Image, language: str | None, budget: int | None, cancel: threading.Event, use_cache: bool
    ) -> tuple[PageReading, bool]:
        """(reading, True when it came from the cache)."""
        cache = default_ocr_cache() if use_cache else None
        key = page_key(image, self._cache_settings(language, budget)) if cache else ""
        stored = cache.get(key) if cache else None
        if stored is not None:
            return PageReading.from_dict(stored), True
        reading = self._read_page(image, language, cancel)
        if cache:
            cache.put(key, self.spec.family, reading.to_dict())
        return reading, False

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str | Progress, None, GenerationStats]:
        images = latest_user_images(messages)
        question = latest_user_text(messages)
        if not images:
            yield (
                f"{self.spec.key} is an offline OCR engine: it reads the text of an image or PDF page and cannot "
                "chat. Attach a document, or choose a vision-language model to ask questions."
            )
            return GenerationStats(stopped_by=StopReason.EOS, extras={"qa_supported": False})

        options = ClassicOcrOptions.of(self.spec.options, settings.options)
        language = options.lang
        task = classify(question)
        # OCR answers a layout, formula or chart request with its text and boxes; the rest get `compose`.
        request = Task.TRANSCRIBE if task in OCR_TRANSCRIBES else task
        transcribing = request is Task.TRANSCRIBE
        lines_out: list[dict[str, Any]] = []
        pages_out: list[dict[str, Any]] = []
        page_rows: list[tuple[int, list[list[TextBox]]]] = []
        texts: list[str] = []
        budget = settings.max_pixels or (self.plan.max_pixels if self.plan else None)
        # The document's own page numbers when the caller gives them ("All pages" after page 3 is 1, 2, 3).
        numbers = settings.page_numbers
        for index, image in enumerate(images):
            page = numbers[index] if len(numbers) == len(images) else index + 1
            if cancel.is_set():
                return GenerationStats(stopped_by=StopReason.CANCELLED, extras={"lines": lines_out, "pages": pages_out})
            yield Progress(done=index, total=len(images))
            resized = fit_to_budget(image.convert("RGB"), budget)
            scale = resized.width / image.width
            try:
                reading, cached = self._cached_read(resized, language, budget, cancel, options.ocr_cache)
            except Cancelled:
                return GenerationStats(stopped_by=StopReason.CANCELLED, extras={"lines": lines_out, "pages": pages_out})
            rows = reading.rows
            pages_out.append({"page": page, "engine": reading.reader.value, "reason": reading.reason, "cached": cached})
            # Boxes in the coordinates of the page the user sees, not of the resized copy.
            lines_out.extend(
                {
                    "page": page,
                    "text": " ".join(b.text for b in row),
                    "box": _union(row, scale),
                    "score": _mean_score(row),
                }
                for row in rows
            )
            page_rows.append((page, rows))
            prefix = f"\n\n--- page {page} ---\n" if len(images) > 1 else ("\n\n" if index > 0 else "")
            texts.append(prefix + lines_text(rows) if rows else prefix)
            if transcribing:
                yield texts[-1]
        if not transcribing:
            yield compose(request, self.spec.key, page_rows, "".join(texts).strip(), question)
        extras: dict[str, Any] = {
            "lines": lines_out,
            "pages": pages_out,
            "qa_supported": False,
            "engine": self.spec.family,
            "request": request.value,
            "read_by": reader_summary(pages_out),
        }
        note = self._language_note(language)
        if note and not any(p["engine"] == Reader.TESSERACT for p in pages_out):
            extras["warning"] = note
        if request is Task.QUESTION:
            extras["note"] = "offline OCR cannot answer questions; the transcription was returned instead"
        read_any = any(text.strip() for text in texts)  # a blank page stays an empty answer (the router moves on)
        if read_any and options.reader_note and (self.spec.family == "ocr_auto" or _handed_off(self, pages_out)):
            yield f"\n\n({extras['read_by']})"
        return GenerationStats(stopped_by=StopReason.EOS, new_tokens=None, extras=extras)


def _handed_off(engine: ClassicOcrEngine, pages: Sequence[dict[str, Any]]) -> bool:
    return any(page["engine"] != engine.spec.family for page in pages)


def reader_summary(pages: Sequence[dict[str, Any]]) -> str:
    """ "Read by tesseract: Cyrillic script (...)" — one clause per page (the answer's last line)."""
    if not pages:
        return ""
    if len(pages) == 1:
        page = pages[0]
        cached = " (from the OCR cache)" if page["cached"] else ""
        return f"Read by {page['engine']}{cached}: {page['reason']}"
    return "Read by " + "; ".join(
        f"page {p['page']}: {p['engine']}{' (cached)' if p['cached'] else ''} ({p['reason']})" for p in pages
    )


def _union(row: Sequence[TextBox], scale: float = 1.0) -> list[float]:
    """The box around a row as [x0, y0, x1, y1], divided by the resize scale."""
    edges = (min(b.x0 for b in row), min(b.y0 for b in row), max(b.x1 for b in row), max(b.y1 for b in row))
    return [round(edge / scale, 1) for edge in edges]


def _mean_score(row: Sequence[TextBox]) -> float:
    return round(sum(b.score for b in row) / len(row), 4)


@dataclass
class PageReading:
    """One page read: rows of boxes in reading order, which reader read it, and why."""

    rows: list[list[TextBox]]
    reader: Reader
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [[[b.text, list(b.box), b.score] for b in row] for row in self.rows],
            "reader": self.reader.value,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageReading:
        rows = [
            [TextBox(text, (box[0], box[1], box[2], box[3]), score) for text, box, score in row] for row in data["rows"]
        ]
        return cls(rows, Reader(data["reader"]), data["reason"])


class RapidOcrEngine(ClassicOcrEngine):
    """RapidOCR (tuned: _ocr_readers.tuned_rapid_params). A page whose script probe says Cyrillic is
    handed to Tesseract (rapidocr's bundled models have no Cyrillic), and the answer says so."""

    _rapid: RapidReader | None = None
    _params: dict[str, Any] | None = None  # None: the tuned settings

    def _load(self, plan: LoadPlan) -> None:
        params = ClassicOcrOptions.of(self.spec.options).rapidocr_params
        self._rapid = RapidReader({**DEFAULT_RAPID_PARAMS, **params} if params is not None else None)
        self._tesseract = TesseractReader()

    def _unload(self) -> None:
        self._rapid = None

    @property
    def rapid(self) -> RapidReader:
        if self._rapid is None:
            raise EngineError(f"{self.spec.key} is not loaded")
        return self._rapid

    def _read_page(self, image: Image.Image, language: str | None, cancel: threading.Event) -> PageReading:
        detection = self.rapid.detect(image)
        if detection.empty:
            return PageReading([], Reader.RAPIDOCR, "no text detected")
        guess = probe_script(detection.crops, self._tesseract, cancel)
        if guess.script is Script.CYRILLIC:
            return self._read_cyrillic(image, language, guess, cancel)
        return self._read_latin(image, detection, guess, cancel)

    def _read_latin(
        self, image: Image.Image, detection: Detection, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        return PageReading(self.rapid.recognise(detection, cancel), Reader.RAPIDOCR, guess.describe())

    def _read_cyrillic(
        self, image: Image.Image, language: str | None, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        wanted = TESSERACT_LANGUAGES.get((language or "").lower()[:2])
        tesseract_language = wanted if wanted and wanted != "eng" else "rus+eng"
        rows = self._tesseract.read(image, tesseract_language, cancel)
        why = (
            f"{guess.describe()}; rapidocr's bundled models have no Cyrillic, Tesseract ({tesseract_language}) reads it"
        )
        return PageReading(rows, Reader.TESSERACT, why)

    def _language_note(self, language: str | None) -> str | None:
        if language and language.lower()[:2] not in ("", "en", "zh", "ch"):
            return (
                f"rapidocr's bundled models read Latin script and Chinese, not {language!r}; "
                "use the tesseract engine for Russian"
            )
        return None


class AutoOcrEngine(RapidOcrEngine):
    """The best of both, per page: script first (Cyrillic → Tesseract), then layout (prose pages →
    Tesseract, receipts, tables and charts → RapidOCR), from one RapidOCR detection pass that the
    RapidOCR reading then reuses. extras["pages"] records which engine read each page and why."""

    def _read_latin(
        self, image: Image.Image, detection: Detection, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        reader, why = choose_reader(page_layout(detection.boxes, image.size))
        if reader is Reader.TESSERACT and not tesseract_problem():
            return PageReading(self._tesseract.read(image, "eng", cancel), Reader.TESSERACT, why)
        return PageReading(self.rapid.recognise(detection, cancel), Reader.RAPIDOCR, why)

    def _language_note(self, language: str | None) -> str | None:
        return None


class TesseractEngine(ClassicOcrEngine):
    """Tesseract 5 (subprocess, OMP_THREAD_LIMIT, psm by page shape), in the order of its own layout analysis."""

    def _load(self, plan: LoadPlan) -> None:
        problem = tesseract_problem()
        if problem:
            raise EngineError(f"tesseract cannot run: {problem}")
        import pytesseract

        self._installed_languages = set(pytesseract.get_languages(config=""))
        self._tesseract = TesseractReader()

    def _tesseract_language(self, language: str | None) -> str:
        """Tesseract's language for an ISO code; with none given, every installed one we map.

        Unknown language (the app's chat has no language setting): "eng+rus" reads Russian pages
        (as well as "rus" alone) and English ones nearly as well as "eng" (receipts CER +0.005 on
        ../shared/eval), about 1.5x slower. A named language uses its own data only.
        """
        if not language:
            known = [name for name in TESSERACT_LANGUAGES.values() if name in self._installed_languages]
            return "+".join(known) or "eng"
        wanted = TESSERACT_LANGUAGES.get(language.lower()[:2], "eng")
        if wanted not in self._installed_languages:
            raise EngineError(
                f"Tesseract has no {wanted!r} language data here; install it: apt-get install tesseract-ocr-{wanted}"
            )
        return wanted

    def _read_page(self, image: Image.Image, language: str | None, cancel: threading.Event) -> PageReading:
        tesseract_language = self._tesseract_language(language)
        rows = self._tesseract.read(image, tesseract_language, cancel)
        return PageReading(rows, Reader.TESSERACT, f"chosen engine (language {tesseract_language})")


FAMILIES = {
    AUTO: _offline_family(
        AUTO,
        AutoOcrEngine,
        "Offline OCR, best of both per page: script probe (Cyrillic → Tesseract), then layout "
        "(prose → Tesseract; receipts, tables, charts → RapidOCR)",
    ),
    "rapidocr": _offline_family(
        "rapidocr",
        RapidOcrEngine,
        "Offline OCR: PP-OCR models bundled in the rapidocr wheel, on onnxruntime (CPU); Latin script",
    ),
    "tesseract": _offline_family(
        "tesseract",
        TesseractEngine,
        f"Offline OCR: Tesseract 5 (needs `{TESSERACT_INSTALL}`); reads Russian",
        availability=tesseract_problem,
    ),
}
