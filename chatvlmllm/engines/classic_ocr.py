"""Offline OCR engines behind the engine protocol: RapidOCR (the embedded default) and Tesseract.

Neither needs a GPU or a download: RapidOCR's PP-OCR models ship inside the `rapidocr` wheel and
run on onnxruntime; Tesseract is the Debian binary (`tesseract-ocr`, `tesseract-ocr-rus`) driven
through pytesseract. They transcribe; they cannot answer questions, and say so instead of
pretending (the text they read comes back, with a note that Q&A needs a vision-language model).

Per-language default, measured on ../shared/eval (docs/benchmark.md): RapidOCR for Latin-script
documents (better CER on receipts and on English overall, faster on receipts), Tesseract for
Russian (RapidOCR's bundled models have no Cyrillic; its Cyrillic model is a download).
"""

from __future__ import annotations

import itertools
import re
import shutil
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from chatvlmllm.decisions import Backend, StopReason
from chatvlmllm.engines.base import (
    BaseEngine,
    FamilyInfo,
    GenerationSettings,
    GenerationStats,
    Message,
    Progress,
    fit_to_budget,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.reading_order import TextBox, box_from_points, lines_text, reading_order

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.planner import LoadPlan

TESSERACT_INSTALL = "apt-get install tesseract-ocr tesseract-ocr-rus"
# Which offline engine reads which language best (measured: docs/benchmark.md).
DEFAULT_ENGINE_BY_LANGUAGE = {"en": "rapidocr", "ru": "tesseract"}
FALLBACK_LANGUAGE_ENGINE = "rapidocr"
# ISO 639-1 → Tesseract's traineddata names.
TESSERACT_LANGUAGES = {"en": "eng", "ru": "rus"}


def tesseract_problem() -> str | None:
    """Why Tesseract cannot run here (no binary on PATH), or None."""
    import pytesseract

    command = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(command) is None:
        return f"the `{command}` binary is not installed ({TESSERACT_INSTALL})"
    return None


def offline_engine_for(language: str | None) -> str:
    """The offline engine that measured best for a language (ISO 639-1), e.g. "ru" → "tesseract".

    Falls back to RapidOCR when Tesseract is not installed, so there is always an answer.
    """
    key = DEFAULT_ENGINE_BY_LANGUAGE.get((language or "").lower()[:2], FALLBACK_LANGUAGE_ENGINE)
    if key == "tesseract" and tesseract_problem():
        return FALLBACK_LANGUAGE_ENGINE
    return key


FAMILIES = {
    "rapidocr": FamilyInfo(
        "rapidocr",
        "chatvlmllm.engines.classic_ocr:RapidOcrEngine",
        backend=Backend.CLASSIC,
        attention=(),
        capabilities=frozenset({"ocr"}),
        needs_weights=False,
        notes=("Offline OCR: PP-OCR models bundled in the rapidocr wheel, on onnxruntime (CPU); Latin script",),
    ),
    "tesseract": FamilyInfo(
        "tesseract",
        "chatvlmllm.engines.classic_ocr:TesseractEngine",
        backend=Backend.CLASSIC,
        attention=(),
        capabilities=frozenset({"ocr"}),
        needs_weights=False,
        notes=(f"Offline OCR: Tesseract 5 via pytesseract (needs `{TESSERACT_INSTALL}`); the Russian default",),
        availability=tesseract_problem,
    ),
}

# Requests that ask for the text itself; anything else is a question an OCR engine cannot answer.
_TRANSCRIPTION_REQUEST = re.compile(
    r"\b(extract|transcri\w*|ocr|read|text|write (out|down)|copy|digiti[sz]e|convert|"
    r"текст\w*|распозна\w*|извлеки|прочитай|перепиши)\b",
    re.IGNORECASE,
)


# Questions, and requests for something OCR cannot produce (structure, summaries, fields).
_BEYOND_TRANSCRIPTION = re.compile(
    r"\?|\b(json|table|markdown|summar\w*|translat\w*|explain\w*|fields?|total|amount|date|"
    r"who|what|when|where|why|how|which)\b|таблиц\w*|сумм\w*|перевед\w*",
    re.IGNORECASE,
)


def is_transcription_request(question: str) -> bool:
    """True for "Extract all text", "OCR this", "Распознай текст"; False for "What is the total?",
    "Convert the table into Markdown" or "Extract the key fields as JSON" (OCR has only the text)."""
    question = question.strip()
    if not question:
        return True
    return bool(_TRANSCRIPTION_REQUEST.search(question)) and not _BEYOND_TRANSCRIPTION.search(question)


class ClassicOcrEngine(BaseEngine):
    """Shared behaviour: pages in, text in reading order out, line boxes in extras["lines"]."""

    def _read(self, image: Image.Image, language: str | None) -> list[list[TextBox]]:
        """Text rows in reading order, each a list of boxes left to right."""
        raise NotImplementedError

    def _language_note(self, language: str | None) -> str | None:
        return None

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

        language = settings.options.get("lang") or settings.options.get("language")
        answering_question = not is_transcription_request(question)
        if answering_question:
            # Honest: no answer is made up; the user gets the text and the reason.
            yield (
                f"{self.spec.key} is an offline OCR engine and cannot answer questions; a vision-language model "
                "is needed for Q&A. Here is the text it read:\n\n"
            )
        lines_out: list[dict[str, Any]] = []
        budget = settings.max_pixels or (self.plan.max_pixels if self.plan else None)
        # The document's own page numbers when the caller gives them ("All pages" after page 3 is 1, 2, 3).
        numbers = settings.options.get("page_numbers") or []
        for index, image in enumerate(images):
            page = numbers[index] if len(numbers) == len(images) else index + 1
            if cancel.is_set():
                return GenerationStats(stopped_by=StopReason.CANCELLED, extras={"lines": lines_out})
            yield Progress(done=index, total=len(images))
            resized = fit_to_budget(image.convert("RGB"), budget)
            scale = resized.width / image.width
            rows = self._read(resized, language)
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
            prefix = f"\n\n--- page {page} ---\n" if len(images) > 1 else ("\n\n" if index > 0 else "")
            yield prefix + lines_text(rows) if rows else prefix
        extras: dict[str, Any] = {"lines": lines_out, "qa_supported": False, "engine": self.spec.family}
        note = self._language_note(language)
        if note:
            extras["warning"] = note
        if answering_question:
            extras["note"] = "offline OCR cannot answer questions; the transcription was returned instead"
        return GenerationStats(stopped_by=StopReason.EOS, new_tokens=None, extras=extras)


def _union(row: Sequence[TextBox], scale: float = 1.0) -> list[float]:
    """The box around a row as [x0, y0, x1, y1], divided by the resize scale."""
    edges = (min(b.x0 for b in row), min(b.y0 for b in row), max(b.x1 for b in row), max(b.y1 for b in row))
    return [round(edge / scale, 1) for edge in edges]


def _mean_score(row: Sequence[TextBox]) -> float:
    return round(sum(b.score for b in row) / len(row), 4)


class RapidOcrEngine(ClassicOcrEngine):
    """RapidOCR 3.x on onnxruntime with the PP-OCR detection and recognition models of its wheel."""

    _ocr: Any = None

    def _load(self, plan: LoadPlan) -> None:
        try:
            from rapidocr import RapidOCR

            # Log level "error": RapidOCR logs every call at info level otherwise.
            self._ocr = RapidOCR(params={"Global.log_level": "error"})
        except Exception as exc:  # missing wheel, broken onnxruntime
            raise EngineError(f"rapidocr cannot start: {exc} (pip install rapidocr onnxruntime)") from exc

    def _unload(self) -> None:
        self._ocr = None

    def _read(self, image: Image.Image, language: str | None) -> list[list[TextBox]]:
        import numpy as np

        # RapidOCR expects OpenCV's BGR channel order. A contiguous copy: the reversed-channel view
        # costs OpenCV's preprocessing about 0.5 s more per receipt than the copy does.
        result = self._ocr(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]))
        if result.boxes is None or result.txts is None:
            return []
        return reading_order(
            [
                TextBox(text, box_from_points(points), float(score))
                for points, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            ]
        )

    def _language_note(self, language: str | None) -> str | None:
        if language and language.lower()[:2] not in ("", "en", "zh", "ch"):
            return (
                f"rapidocr's bundled models read Latin script and Chinese, not {language!r}; "
                "use the tesseract engine for Russian"
            )
        return None


class TesseractEngine(ClassicOcrEngine):
    """Tesseract 5 through pytesseract, in the order of its own layout analysis (see tesseract_rows)."""

    def _load(self, plan: LoadPlan) -> None:
        problem = tesseract_problem()
        if problem:
            raise EngineError(f"tesseract cannot run: {problem}")
        import pytesseract

        self._installed_languages = set(pytesseract.get_languages(config=""))

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

    def _read(self, image: Image.Image, language: str | None) -> list[list[TextBox]]:
        import pytesseract

        data = pytesseract.image_to_data(
            image, lang=self._tesseract_language(language), output_type=pytesseract.Output.DICT
        )
        return tesseract_rows(data)


def tesseract_rows(data: dict[str, list]) -> list[list[TextBox]]:
    """Tesseract's words (image_to_data) as text rows in reading order.

    Tesseract's own layout analysis orders the blocks (it finds columns well), and its order is
    kept. But it reads two columns whose lines align as one line: such a line is split where two
    words are further apart than GUTTER_WORD_HEIGHTS word heights, and a block with split lines
    is put in order by reading_order (columns one after the other; a receipt's label and amount
    rejoin as one row).
    """
    blocks: dict[tuple[int, int], dict[tuple[int, int], list[int]]] = {}
    for i, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][i]) >= 0:
            block = blocks.setdefault((data["page_num"][i], data["block_num"][i]), {})
            block.setdefault((data["par_num"][i], data["line_num"][i]), []).append(i)
    rows: list[list[TextBox]] = []
    for lines in blocks.values():
        pieces = [_split_at_gutters(sorted(words, key=lambda i: data["left"][i]), data) for words in lines.values()]
        if any(len(line) > 1 for line in pieces):
            rows.extend(reading_order([_tesseract_box(piece, data) for line in pieces for piece in line]))
        else:
            rows.extend([_tesseract_box(line[0], data)] for line in pieces)
    return rows


GUTTER_WORD_HEIGHTS = 2.0


def _split_at_gutters(indices: list[int], data: dict[str, list]) -> list[list[int]]:
    pieces = [[indices[0]]]
    for previous, current in itertools.pairwise(indices):
        gap = data["left"][current] - (data["left"][previous] + data["width"][previous])
        height = max(data["height"][previous], data["height"][current], 1)
        if gap > GUTTER_WORD_HEIGHTS * height:
            pieces.append([])
        pieces[-1].append(current)
    return pieces


def _tesseract_box(indices: list[int], data: dict[str, list]) -> TextBox:
    x0 = min(data["left"][i] for i in indices)
    y0 = min(data["top"][i] for i in indices)
    x1 = max(data["left"][i] + data["width"][i] for i in indices)
    y1 = max(data["top"][i] + data["height"][i] for i in indices)
    text = " ".join(str(data["text"][i]).strip() for i in indices)
    score = sum(float(data["conf"][i]) for i in indices) / len(indices) / 100.0
    return TextBox(text, (float(x0), float(y0), float(x1), float(y1)), round(score, 4))
