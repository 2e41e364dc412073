"""Which reader's text `ocr_auto` keeps for a Latin page, from what the page itself shows.

The script probe has already shown Tesseract the page's widest lines: when it was unsure of them
(mean word confidence under MIN_PROBE_CONFIDENCE: receipts' thermal print), RapidOCR reads the page
and Tesseract does not read it at all. Otherwise Tesseract reads first (it is the faster reader on
full pages, and its layout analysis reads columns in order); RapidOCR reads the page only when
Tesseract's own evidence is weak:

- its mean word confidence is low (receipts' thermal print, charts, photographed pages), or
- its lines are not text lines but table cells (median words per line under MIN_WORDS_PER_LINE):
  then Tesseract reads a table column by column, RapidOCR row by row.

When RapidOCR has read it too, the two readings are compared: if they hold the same words
(word agreement ≥ MIN_AGREEMENT) they differ only in order, and Tesseract's order is kept; if not,
one of them misread, and RapidOCR's recogniser is the better one (receipts, tables, charts).

How this compares with the other ways of choosing (the old prose-share rule, comparing both
engines on a probe region, a line-by-line vote), in-sample and leave-one-kind-out: benchmarks/ocr_choice_cv.py
and docs/benchmark.md.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass

# Fitted on ../shared/eval by benchmarks/ocr_choice_cv.py (the fit on all items; the leave-one-kind-out
# folds chose 90-92, 2.5 and 0.82-0.96: docs/benchmark.md has what each fold's choice scores on its held-out kind).
# The probe gate, fitted nested over the three below (the largest value that changes no text; in-sample
# and 7 of 8 folds 88, without receipts 86). Thin margin: two multi-column pages' strips are at 88.7-88.8.
MIN_PROBE_CONFIDENCE = 88.0
MIN_CONFIDENCE = 90.0
MIN_WORDS_PER_LINE = 2.5
# Word agreement (F1 over words) at or above which the two readings hold the same text.
MIN_AGREEMENT = 0.96


@dataclass(frozen=True)
class TesseractEvidence:
    """What Tesseract's words say about how well it read a page."""

    words: int
    mean_confidence: float  # 0-100, over the words read
    words_per_line: float  # median over its lines

    @classmethod
    def from_words(cls, data: dict[str, list]) -> TesseractEvidence:
        """From Tesseract's TSV columns (text, conf, block_num, par_num, line_num per word)."""
        lines: dict[tuple[int, int, int], int] = {}
        confidences = []
        for i, text in enumerate(data["text"]):
            if str(text).strip() and float(data["conf"][i]) >= 0:
                confidences.append(float(data["conf"][i]))
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines[key] = lines.get(key, 0) + 1
        if not confidences:
            return cls(0, 0.0, 0.0)
        return cls(len(confidences), round(statistics.mean(confidences), 1), statistics.median(lines.values()))

    def reads_well(
        self, min_confidence: float = MIN_CONFIDENCE, min_words_per_line: float = MIN_WORDS_PER_LINE
    ) -> bool:
        return self.words > 0 and self.mean_confidence >= min_confidence and self.words_per_line >= min_words_per_line

    def describe(self) -> str:
        return f"mean word confidence {self.mean_confidence:.0f}, {self.words_per_line:g} words per line"


def probe_reads_well(probe_confidence: float, min_confidence: float = MIN_PROBE_CONFIDENCE) -> bool:
    """Whether Tesseract was sure enough of the script probe's strip (the page's widest lines) to read the page."""
    return probe_confidence >= min_confidence


_WORD = re.compile(r"\w+", re.UNICODE)


def word_agreement(first: str, second: str) -> float:
    """How far two readings of a page hold the same words, whatever their order (F1 over case-folded words).

    Near 1: the engines recognised the same text and differ in reading order only; low: one of them
    misread, and RapidOCR's recogniser is the better one on such pages (receipts, tables, charts).
    """
    counts = [Counter(_WORD.findall(unicodedata.normalize("NFKC", text).casefold())) for text in (first, second)]
    common = sum((counts[0] & counts[1]).values())
    total = sum(counts[0].values()) + sum(counts[1].values())
    return 2 * common / total if total else 1.0
