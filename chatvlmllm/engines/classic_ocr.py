"""Offline OCR engines behind the engine protocol: `ocr_auto` (the embedded default), RapidOCR and Tesseract.

None needs a GPU or a download: RapidOCR's PP-OCR models ship inside the `rapidocr` wheel and
run on onnxruntime; Tesseract is the Debian binary (`tesseract-ocr`, `tesseract-ocr-rus`). They
transcribe; they cannot answer questions, and say so instead of pretending (chatvlmllm.engines._ocr_answers
holds what each kind of request gets).

Measured on ../shared/eval (docs/benchmark.md): RapidOCR reads receipts, tables and charts
better; Tesseract reads prose pages (columns) and Russian; `ocr_auto` probes each page's script,
then keeps Tesseract's reading of a Latin page unless Tesseract's own evidence is weak. The
readers and their speed settings live in `_ocr_readers`, the per-page choice in `_ocr_choice`.
Which engine read a page is said beside the text (extras["read_by"], extras["pages"]), never in it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from chatvlmllm.decisions import Backend, StopReason, Task
from chatvlmllm.documents.ocr_cache import default_ocr_cache, page_key
from chatvlmllm.documents.reading_order import TextBox, lines_text
from chatvlmllm.engines._ocr_answers import compose
from chatvlmllm.engines._ocr_choice import MIN_AGREEMENT, TesseractEvidence, probe_reads_well, word_agreement
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
    probe_script,
    tesseract_problem,
    tesseract_rows,
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
    reader_summary,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.i18n import N_, SOURCE_LANGUAGE
from chatvlmllm.models.families import FamilyInfo, Options
from chatvlmllm.models.tasks import OCR_TRANSCRIBES, OFFLINE_AUTO, classify

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.planner import LoadPlan

__all__ = ["TESSERACT_INSTALL", "tesseract_problem"]

log = logging.getLogger(__name__)

AUTO = OFFLINE_AUTO
# ISO 639-1 → Tesseract's traineddata names.
TESSERACT_LANGUAGES = {"en": "eng", "ru": "rus"}
# Part of the OCR cache key: bump when a change makes the engines return different text.
# Cache versions: 6: full-width punctuation folded to ASCII outside CJK text; 5: receipts by RapidOCR alone,
# recogniser input sorted and ≥ 160 px; 4: cells kept
OCR_SETTINGS_VERSION = 6


class ClassicOcrOptions(Options):
    """What an offline OCR entry (or one answer) may set."""

    lang: str | None = Field(
        None,
        description="The document's language, ISO 639-1 (en, ru); unset: Tesseract reads every installed "
        "language it knows (eng+rus). Models files may still spell it `language`, its old name.",
    )
    ocr_cache: bool = Field(True, description="false: read the page again even when its text is in the OCR cache.")
    # Older models files may set it; the note that turned off is now always beside the text, never in it.
    reader_note: bool = Field(True, description="Ignored: which engine read a page is said beside the text.")
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
        task = classify(question)
        # OCR answers a layout, formula or chart request with its text and boxes; the rest get `compose`.
        request = Task.TRANSCRIBE if task in OCR_TRANSCRIBES else task
        read = PagesRead()
        for index, image in enumerate(images):
            if cancel.is_set():
                return read.stopped()
            yield Progress(done=index, total=len(images))
            try:
                text = self._read_into(read, image, _page_number(settings, index, len(images)), settings, cancel)
            except Cancelled:
                return read.stopped()
            if request is Task.TRANSCRIBE:
                yield _page_prefix(read, index, len(images)) + text
        if request is not Task.TRANSCRIBE:
            yield compose(request, self.spec.key, read.page_rows, read.text(len(images)), question)
        return GenerationStats(stopped_by=StopReason.EOS, new_tokens=None, extras=self._extras(read, request, settings))

    def _options(self, settings: GenerationSettings) -> ClassicOcrOptions:
        """This entry's options with the answer's over them (the document language, the cache switch)."""
        return ClassicOcrOptions.of(self.spec.options, settings.options)

    def _read_into(
        self, read: PagesRead, image: Image.Image, page: int, settings: GenerationSettings, cancel: threading.Event
    ) -> str:
        """Read one page (or take it from the cache) and add it to `read`; returns the page's text."""
        budget = settings.max_pixels or (self.plan.max_pixels if self.plan else None)
        resized = fit_to_budget(image.convert("RGB"), budget)
        options = self._options(settings)
        reading, cached = self._cached_read(resized, options.lang, budget, cancel, options.ocr_cache)
        read.add(page, reading, cached, scale=resized.width / image.width)
        return read.texts[-1]

    def _extras(self, read: PagesRead, request: Task, settings: GenerationSettings) -> dict[str, Any]:
        """What the answer carries beside its text: line boxes, which engine read each page and why."""
        extras: dict[str, Any] = {
            "lines": read.lines,
            "pages": read.pages,
            "qa_supported": False,
            "engine": self.spec.family,
            "request": request.value,
            # Said beside the text, never inside it: the text is the page's, for copy, download and export.
            # Stored in English (the JSON stays language-neutral); `reader_summary(extras["pages"])` says it
            # again in the language of whoever reads it.
            "read_by": reader_summary(read.pages, SOURCE_LANGUAGE),
        }
        note = self._language_note(self._options(settings).lang)
        if note and not any(p["engine"] == Reader.TESSERACT for p in read.pages):
            extras["warning"] = note
        if request is Task.QUESTION:
            # Stored in English; marked, so that `_(note)` shows it translated.
            extras["note"] = N_("offline OCR cannot answer questions; the transcription was returned instead")
        return extras


def _page_number(settings: GenerationSettings, index: int, count: int) -> int:
    """The document's own page number when the caller gives them ("All pages" after page 3 is 1, 2, 3)."""
    numbers = settings.page_numbers
    return numbers[index] if len(numbers) == count else index + 1


def _page_prefix(read: PagesRead, index: int, count: int) -> str:
    if count > 1:
        return f"\n\n--- page {read.pages[-1]['page']} ---\n"
    return "\n\n" if index > 0 else ""


@dataclass
class PagesRead:
    """The pages of one answer read so far: their rows, line boxes (page coordinates), texts and readers."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    page_rows: list[tuple[int, list[list[TextBox]]]] = field(default_factory=list)  # (page, its rows)
    texts: list[str] = field(default_factory=list)

    def add(self, page: int, reading: PageReading, cached: bool, scale: float) -> None:
        self.pages.append({"page": page, "engine": reading.reader.value, "reason": reading.reason, "cached": cached})
        # Boxes in the coordinates of the page the user sees, not of the resized copy.
        self.lines.extend(
            {"page": page, "text": " ".join(b.text for b in row), "box": _union(row, scale), "score": _mean_score(row)}
            for row in reading.rows
        )
        self.page_rows.append((page, reading.cell_rows or reading.rows))  # cells, where known, for tables
        self.texts.append(lines_text(reading.rows) if reading.rows else "")

    def text(self, count: int) -> str:
        """All pages' text, with the page markers a transcription has."""
        if count > 1:
            return "".join(
                f"\n\n--- page {page['page']} ---\n{text}" for page, text in zip(self.pages, self.texts, strict=True)
            ).strip()
        return "\n\n".join(self.texts).strip()

    def stopped(self) -> GenerationStats:
        extras = {"lines": self.lines, "pages": self.pages, "read_by": reader_summary(self.pages, SOURCE_LANGUAGE)}
        return GenerationStats(stopped_by=StopReason.CANCELLED, extras=extras)


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
    # RapidOCR's rows when it read the page too but Tesseract's text was kept: its boxes are cells, the
    # unit a table is built from (Tesseract's are whole lines).
    cell_rows: list[list[TextBox]] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rows": _rows_data(self.rows), "reader": self.reader.value, "reason": self.reason}
        if self.cell_rows is not None:
            data["cell_rows"] = _rows_data(self.cell_rows)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageReading:
        cells = data.get("cell_rows")
        return cls(
            _rows_from(data["rows"]), Reader(data["reader"]), data["reason"], _rows_from(cells) if cells else None
        )


def _rows_data(rows: Sequence[Sequence[TextBox]]) -> list[list[list[Any]]]:
    return [[[b.text, list(b.box), b.score] for b in row] for row in rows]


def _rows_from(data: Sequence[Sequence[Sequence[Any]]]) -> list[list[TextBox]]:
    return [[TextBox(text, (box[0], box[1], box[2], box[3]), score) for text, box, score in row] for row in data]


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
            return PageReading([], Reader.RAPIDOCR, N_("no text was found on the page"))
        if tesseract_problem():  # RapidOCR is the only reader here
            return PageReading(
                self.rapid.recognise(detection, cancel), Reader.RAPIDOCR, N_("Tesseract is not installed")
            )
        guess = probe_script(detection.crops, self._tesseract, cancel)
        if guess.script is Script.CYRILLIC:
            return self._read_cyrillic(image, language, cancel)
        if guess.script is Script.UNKNOWN:  # too little text to tell: never to a reader without Cyrillic
            return self._read_unsure(image, language, guess, cancel)
        return self._read_latin(image, detection, guess, cancel)

    def _read_latin(
        self, image: Image.Image, detection: Detection, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        return PageReading(self.rapid.recognise(detection, cancel), Reader.RAPIDOCR, N_("the chosen engine"))

    def _read_cyrillic(self, image: Image.Image, language: str | None, cancel: threading.Event) -> PageReading:
        wanted = TESSERACT_LANGUAGES.get((language or "").lower()[:2])
        tesseract_language = wanted if wanted and wanted != "eng" else "rus+eng"
        rows = self._tesseract.read(image, tesseract_language, cancel)
        why = N_("the page is in Cyrillic script, which RapidOCR's models do not read")
        return PageReading(rows, Reader.TESSERACT, why)

    def _read_unsure(
        self, image: Image.Image, language: str | None, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        """A page too short to tell its script: Tesseract reads it as English and as Russian, and the
        reading it is more confident of is kept (one reader's confidences compare; a rus+eng read of
        "CHARLIE" gave "СНАВЫЕ"). The document's language, when set, wins a tie: it is often only the
        interface's language, and the page itself says more (an English receipt in a Russian UI)."""
        log.debug("script unsure: %s", guess.describe())
        why = N_("too little text to tell Latin from Cyrillic, and Tesseract reads both")
        wanted = TESSERACT_LANGUAGES.get((language or "").lower()[:2])
        order = [wanted] if wanted in ("eng", "rus") else []
        order += [name for name in ("eng", "rus") if name not in order]
        readings = {name: self._tesseract.words(image, name, cancel) for name in order}
        # max() keeps the first of equals: the set language first.
        chosen = max(order, key=lambda name: TesseractEvidence.from_words(readings[name]).mean_confidence)
        return PageReading(tesseract_rows(readings[chosen]), Reader.TESSERACT, why)

    def _language_note(self, language: str | None) -> str | None:
        if language and language.lower()[:2] not in ("", "en", "zh", "ch"):
            return (
                f"rapidocr's bundled models read Latin script and Chinese, not {language!r}; "
                "use the tesseract engine for Russian"
            )
        return None


class AutoOcrEngine(RapidOcrEngine):
    """The best of both, per page, from what the page itself shows (chatvlmllm.engines._ocr_choice).

    One RapidOCR detection pass and the script probe first: a Cyrillic page, or one too short to
    tell, goes to Tesseract. A Latin page whose probe strip Tesseract was unsure of (receipts) is read
    by RapidOCR alone. Any other Latin page is read by Tesseract; when Tesseract is unsure of it
    (low word confidence, or table cells rather than lines), RapidOCR recognises the lines already
    detected, and Tesseract's text is kept only if both read the same words (its reading order of
    columns is the better one). extras["pages"] records which engine read each page and why.
    """

    def _read_latin(
        self, image: Image.Image, detection: Detection, guess: ScriptGuess, cancel: threading.Event
    ) -> PageReading:
        if not probe_reads_well(guess.confidence):  # receipts: Tesseract would be unsure of the whole page too
            log.debug("Tesseract unsure of the probe (confidence %.1f): RapidOCR reads", guess.confidence)
            why = N_("Tesseract was unsure of the page's widest lines, and RapidOCR read it")
            return PageReading(self.rapid.recognise(detection, cancel), Reader.RAPIDOCR, why)
        words = self._tesseract.words(image, "eng", cancel)
        tesseract_lines = tesseract_rows(words)
        evidence = TesseractEvidence.from_words(words)
        if evidence.reads_well():
            log.debug("Tesseract kept: %s", evidence.describe())
            return PageReading(tesseract_lines, Reader.TESSERACT, N_("Tesseract was sure of its reading"))
        rapid_lines = self.rapid.recognise(detection, cancel)
        agreement = word_agreement(lines_text(rapid_lines), lines_text(tesseract_lines))
        log.debug("Tesseract unsure (%s); word agreement with RapidOCR %.2f", evidence.describe(), agreement)
        if agreement >= MIN_AGREEMENT:
            why = N_("both engines read the same words, in Tesseract's reading order")
            return PageReading(tesseract_lines, Reader.TESSERACT, why, cell_rows=rapid_lines)
        return PageReading(rapid_lines, Reader.RAPIDOCR, N_("Tesseract was unsure of this page and RapidOCR read it"))

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
        # A fixed reason (the language is in the answer's settings): it is translated where it is shown.
        return PageReading(rows, Reader.TESSERACT, N_("the chosen engine"))


FAMILIES = {
    AUTO: _offline_family(
        AUTO,
        AutoOcrEngine,
        N_(
            "Offline OCR, best of both per page: script probe (Cyrillic or unsure → Tesseract; Tesseract unsure of "
            "the probe's lines → RapidOCR), then Tesseract unless it is unsure of the page (tables, charts → RapidOCR)"
        ),
    ),
    "rapidocr": _offline_family(
        "rapidocr",
        RapidOcrEngine,
        N_("Offline OCR: PP-OCR models bundled in the rapidocr wheel, on onnxruntime (CPU); Latin script"),
    ),
    "tesseract": _offline_family(
        "tesseract",
        TesseractEngine,
        # The command is written out (not the TESSERACT_INSTALL constant) so that the note can be translated.
        N_("Offline OCR: Tesseract 5 (needs `apt-get install tesseract-ocr tesseract-ocr-rus`); reads Russian"),
        availability=tesseract_problem,
    ),
}
