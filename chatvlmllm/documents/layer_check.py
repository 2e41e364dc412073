"""Whether a PDF page's text layer can be trusted, decided per page from measured signals.

Broken layers are common (issue 18): a font without a ToUnicode map gives mojibake (`Ðàçäåë` for `Раздел`),
an invisible OCR layer under a scan may be poor, a layer may cover only part of the page. Each signal below
is measured, not guessed from the file's producer:

- `unmapped_share`: characters PDFium could not map to Unicode (the font says so itself);
- `expected_letter_share`: letters that are plain Latin or Cyrillic. Accented Latin letters are a few
  percent of French or German text and nearly all of a cp1251→cp1252 mojibake;
- `word_share`: words (4+ letters) that are real English or Russian word forms (`lexicon`). Measured on
  ../shared/eval's transcripts: real pages 0.40-0.97 (a drug price table lowest), the same text with 30 % of
  its letters garbled 0.15-0.27, 60 % garbled under 0.07;
- on a scan (a page under one large image: its layer came from an OCR tool), `ink_coverage`: the share of the
  page's dark pixels that lie under the layer's lines (a partial layer leaves most of the ink uncovered), and
  `ocr_agreement`: how closely a quick OCR of a few of the layer's lines reads the same text (an injected
  `LineSampler`, so this module needs no engine).

A page that fails any check is OCR'd; the verdict says which check failed and with what figure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from chatvlmllm.documents.lexicon import real_word_share
from chatvlmllm.documents.text_layer import SCAN_IMAGE_SHARE, LayerReading, TextLine

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MIN_CHARS = 16  # a scan's layer with fewer visible characters than this is no OCR layer
MAX_UNMAPPED_SHARE = 0.1
MIN_EXPECTED_LETTER_SHARE = 0.85
MIN_WORD_SHARE = 0.35
MIN_WORDS_FOR_SHARE = 12  # a page with fewer words is not judged by its word share
MIN_INK_COVERAGE = 0.6
MIN_OCR_AGREEMENT = 0.6
TEXT_SAMPLES, TEXT_SAMPLE_CHARS = 8, 400  # a long page's letters are counted on slices spread over it
SAMPLE_LINES = 4  # layer lines OCR'd to compare, the longest ones
THUMBNAIL_SCALE = 0.25  # the ink check looks at a quarter-size copy of the page
INK_LEVEL = 128  # grey level under which a pixel is ink

# Reads each crop (a line image) and returns its text, in the same order.
LineSampler = Callable[[Sequence["Image.Image"]], Sequence[str]]
_LETTER = re.compile(r"[^\W\d_]")
_EXPECTED_LETTER = re.compile(r"[A-Za-z\u0400-\u04ff]")


class LayerProblem(StrEnum):
    """Why a page's text layer was not used."""

    NO_TEXT = "no text layer"
    UNMAPPED_GLYPHS = "glyphs without Unicode"
    FOREIGN_LETTERS = "letters outside the expected scripts"
    NOT_WORDS = "too few real words"
    PARTIAL = "covers only part of the page"
    DISAGREES_WITH_OCR = "disagrees with OCR"


@dataclass(frozen=True)
class LayerSignals:
    chars: int
    unmapped_share: float
    expected_letter_share: float
    word_share: float
    words_checked: int
    image_share: float
    ink_coverage: float | None = None  # scans only
    ocr_agreement: float | None = None  # scans only, with a sampler

    def to_dict(self) -> dict[str, Any]:
        return {key: round(value, 3) if isinstance(value, float) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class LayerVerdict:
    """The check's decision for one page: trusted, or the first problem found, with every signal measured."""

    problem: LayerProblem | None
    signals: LayerSignals

    @property
    def trusted(self) -> bool:
        return self.problem is None

    def reason(self) -> str:
        """One clause for a person: "text layer: 96 % real words" or "text layer rejected: ..."."""
        s = self.signals
        if self.problem is None:
            checked = f", OCR agrees {s.ocr_agreement:.0%}" if s.ocr_agreement is not None else ""
            return f"text layer: {s.chars} characters, {s.word_share:.0%} real words{checked}"
        figure = {
            LayerProblem.NO_TEXT: f"{s.chars} characters",
            LayerProblem.UNMAPPED_GLYPHS: f"{s.unmapped_share:.0%} of glyphs unmapped",
            LayerProblem.FOREIGN_LETTERS: f"{s.expected_letter_share:.0%} Latin or Cyrillic letters",
            LayerProblem.NOT_WORDS: f"{s.word_share:.0%} of {s.words_checked} words real",
            LayerProblem.PARTIAL: f"{s.ink_coverage or 0:.0%} of the ink under its lines",
            LayerProblem.DISAGREES_WITH_OCR: f"OCR agrees {s.ocr_agreement or 0:.0%}",
        }[self.problem]
        return f"text layer rejected: {self.problem.value} ({figure})"

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem.value if self.problem else None, "signals": self.signals.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerVerdict:
        problem = data.get("problem")
        return cls(LayerProblem(problem) if problem else None, LayerSignals(**data["signals"]))


def judge_text(reading: LayerReading) -> LayerVerdict:
    """The checks on the layer's text alone (milliseconds): enough for a born-digital page."""
    full = reading.text
    text = _sample(full)
    letters = _LETTER.subn("", text)[1]
    expected = _EXPECTED_LETTER.subn("", text)[1]
    word_share, words = real_word_share(text) if letters else (0.0, 0)
    signals = LayerSignals(
        chars=len("".join(full.split())),
        unmapped_share=reading.unmapped_share,
        expected_letter_share=expected / letters if letters else 0.0,
        word_share=word_share,
        words_checked=words,
        image_share=reading.image_share,
    )
    return LayerVerdict(_text_problem(signals, letters), signals)


def _sample(text: str) -> str:
    """A long page's text measured on TEXT_SAMPLES slices spread over it (the signals are shares)."""
    if len(text) <= TEXT_SAMPLES * TEXT_SAMPLE_CHARS:
        return text
    step = len(text) // TEXT_SAMPLES
    return "\n".join(text[start : start + TEXT_SAMPLE_CHARS] for start in range(0, len(text), step))


def _text_problem(s: LayerSignals, letters: int) -> LayerProblem | None:
    # A scan with hardly any layer text has no OCR layer; a born-digital page with a few characters (a page
    # number, a chart's labels) holds what it shows. Nothing at all: text drawn as curves, or a blank page.
    if s.chars == 0 or (s.chars < MIN_CHARS and s.image_share >= SCAN_IMAGE_SHARE):
        return LayerProblem.NO_TEXT
    if s.unmapped_share > MAX_UNMAPPED_SHARE:
        return LayerProblem.UNMAPPED_GLYPHS
    if letters and s.expected_letter_share < MIN_EXPECTED_LETTER_SHARE:
        return LayerProblem.FOREIGN_LETTERS
    if s.words_checked >= MIN_WORDS_FOR_SHARE and s.word_share < MIN_WORD_SHARE:
        return LayerProblem.NOT_WORDS
    return None


def judge_scan(
    verdict: LayerVerdict, image: Image.Image, lines: Sequence[TextLine], sampler: LineSampler | None
) -> LayerVerdict:
    """The checks for a layer under a scan, given the rendered page: ink coverage, then (with a sampler)
    agreement with a quick OCR of a few of its lines. A verdict that already failed is returned as it is."""
    if not verdict.trusted:
        return verdict
    coverage = ink_coverage(image, lines)
    signals = replace(verdict.signals, ink_coverage=coverage)
    if coverage < MIN_INK_COVERAGE:
        return LayerVerdict(LayerProblem.PARTIAL, signals)
    if sampler is None:
        return LayerVerdict(None, signals)
    agreement = ocr_agreement(image, lines, sampler)
    signals = replace(signals, ocr_agreement=agreement)
    return LayerVerdict(LayerProblem.DISAGREES_WITH_OCR if agreement < MIN_OCR_AGREEMENT else None, signals)


def ink_coverage(image: Image.Image, lines: Sequence[TextLine]) -> float:
    """The share of the page's dark pixels inside the layer's line boxes (each widened by half a line height)."""
    import numpy as np

    small = image.convert("L").reduce(round(1 / THUMBNAIL_SCALE))
    ink = np.asarray(small) < INK_LEVEL
    total = int(ink.sum())
    if total < ink.size * 0.001:  # a blank page: nothing to cover
        return 1.0
    covered = np.zeros_like(ink)
    height, width = ink.shape
    for line in lines:
        x0, y0, x1, y1 = (edge * THUMBNAIL_SCALE for edge in line.box)
        pad = max(1.0, (y1 - y0) / 2)
        top, bottom = max(0, int(y0 - pad)), min(height, int(y1 + pad) + 1)
        left, right = max(0, int(x0 - pad)), min(width, int(x1 + pad) + 1)
        covered[top:bottom, left:right] = True
    return float((ink & covered).sum()) / total


def ocr_agreement(image: Image.Image, lines: Sequence[TextLine], sampler: LineSampler) -> float:
    """How closely OCR reads the layer's longest lines (0-1, the mean rapidfuzz ratio over the sample)."""
    from rapidfuzz import fuzz

    chosen = sorted((line for line in lines if len(line.text) >= 8), key=lambda line: -len(line.text))[:SAMPLE_LINES]
    if not chosen:
        return 1.0
    crops = [_crop(image, line) for line in chosen]
    read = list(sampler(crops))
    scores = [fuzz.ratio(_normal(line.text), _normal(text)) / 100 for line, text in zip(chosen, read, strict=False)]
    return sum(scores) / len(chosen) if scores else 0.0


def _crop(image: Image.Image, line: TextLine) -> Image.Image:
    x0, y0, x1, y1 = line.box
    pad = max(2.0, (y1 - y0) * 0.25)
    return image.crop(
        (
            max(0, int(x0 - pad)),
            max(0, int(y0 - pad)),
            min(image.width, int(x1 + pad)),
            min(image.height, int(y1 + pad)),
        )
    )


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
