"""Search in a document's OCR'd text, and the page image with the matching lines highlighted.

The offline answer to "where is the total?": the OCR engines return every line with its box
(answer extras["lines"]: page, text, box [x0, y0, x1, y1] in page pixels), so a search finds the
lines and draws them on the page. Matching is case-insensitive and forgives OCR slips: a line
matches when it contains the query, or when its closest substring is at least MIN_SIMILARITY
similar (rapidfuzz partial ratio), e.g. "TOTAL" finds "T0TAL".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MIN_SIMILARITY = 80.0  # rapidfuzz partial_ratio, 0-100
# Fuzzy matching needs enough letters to mean something: shorter queries match exactly only.
MIN_FUZZY_LENGTH = 4
HIGHLIGHT_FILL = (255, 214, 0, 90)  # translucent yellow
HIGHLIGHT_EDGE = (230, 120, 0, 255)


@dataclass(frozen=True)
class LineMatch:
    page: int
    text: str
    box: tuple[float, float, float, float]
    similarity: float  # 100 for an exact (case-insensitive) hit


def search_lines(
    lines: Iterable[Mapping[str, Any]], query: str, min_similarity: float = MIN_SIMILARITY
) -> list[LineMatch]:
    """The OCR lines that contain `query` (or nearly), best first, then in page order."""
    from rapidfuzz import fuzz

    needle = " ".join(query.split()).casefold()
    if not needle:
        return []
    found = []
    for order, line in enumerate(lines):
        text = str(line.get("text", ""))
        box = line.get("box")
        if not text or not box or len(box) != 4:
            continue
        haystack = " ".join(text.split()).casefold()
        if needle in haystack:
            similarity = 100.0
        elif len(needle) >= MIN_FUZZY_LENGTH:
            similarity = float(fuzz.partial_ratio(needle, haystack))
        else:
            continue
        if similarity >= min_similarity:
            match = LineMatch(int(line.get("page", 1)), text, (box[0], box[1], box[2], box[3]), round(similarity, 1))
            found.append((-similarity, order, match))
    return [match for *_, match in sorted(found, key=lambda entry: (entry[0], entry[1]))]


def highlight(image: Image.Image, matches: Sequence[LineMatch], page: int = 1, pad: int = 4) -> Image.Image:
    """A copy of the page with each match on `page` filled translucent yellow and outlined."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    base = image.convert("RGBA")
    overlay = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = max(2, round(min(base.size) / 400))
    for match in matches:
        if match.page != page:
            continue
        x0, y0, x1, y1 = match.box
        draw.rectangle(
            (x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=HIGHLIGHT_FILL, outline=HIGHLIGHT_EDGE, width=width
        )
    return PILImage.alpha_composite(base, overlay).convert("RGB")


def pages_with_matches(matches: Sequence[LineMatch]) -> list[int]:
    return sorted({match.page for match in matches})


@dataclass(frozen=True)
class OcrText:
    """The OCR lines of the latest answer that has them, and the document pages they are on."""

    document_sha256: str | None
    pages: list[int]  # 1-based document pages; lines' "page" n is pages[n - 1]
    lines: list[dict[str, Any]]

    def document_page(self, answer_page: int) -> int:
        """Engines given the document's page numbers (GenerationSettings.page_numbers) use them in their lines;
        older answers counted the pages sent from 1."""
        if answer_page in self.pages:
            return answer_page
        return self.pages[answer_page - 1] if 0 < answer_page <= len(self.pages) else answer_page


def latest_ocr_text(turns: Sequence[Any], document_sha256: str | None = None) -> OcrText | None:
    """From a conversation's turns (newest last): the latest answer with line boxes, about
    `document_sha256` when given; the question before it says which document and pages."""
    for index in range(len(turns) - 1, -1, -1):
        turn = turns[index]
        lines = turn.extras.get("lines") if turn.role == "assistant" else None
        if not lines:
            continue
        question = next((t for t in reversed(turns[:index]) if t.role == "user"), None)
        sha = question.document_sha256 if question else None
        if document_sha256 is not None and sha != document_sha256:
            continue
        return OcrText(sha, list(question.pages) if question and question.pages else [1], list(lines))
    return None
