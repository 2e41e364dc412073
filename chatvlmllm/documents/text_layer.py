"""A PDF page's own text layer: its lines with boxes, and the measurements the soundness check needs.

PDFium's text page (pypdfium2) gives the page's characters in content order, with a generated line
break where the text moves to a new line. Each line's box comes from PDFium's rectangles for that
character range (`FPDFText_CountRects`), mapped to the pixels of the page as `Document.page` renders it
(`FPDF_PageToDevice`: rotation and crop box included), so a line found here is highlighted on the same
image an OCR'd line would be.

Reading a born-digital page this way costs a few milliseconds (measured: docs/whole-document.md), against
a second or more to OCR it. Whether the layer can be trusted is `layer_check`'s decision.
"""

from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatvlmllm.documents.loading import render_size

if TYPE_CHECKING:
    import pypdfium2 as pdfium

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in page pixels (origin top left)
# Characters whose Unicode mapping is checked (FPDFText_HasUnicodeMapError), spread over the page.
UNICODE_SAMPLE = 64
# An image object covering this share of the page makes it a scan (its layer, if any, came from OCR).
SCAN_IMAGE_SHARE = 0.5


@dataclass(frozen=True)
class TextLine:
    """One line of a page: its text and its box in page pixels."""

    text: str
    box: Box

    def to_list(self) -> list[Any]:
        return [self.text, list(self.box)]

    @classmethod
    def from_list(cls, item: list[Any]) -> TextLine:
        text, box = item
        return cls(str(text), (float(box[0]), float(box[1]), float(box[2]), float(box[3])))


@dataclass(frozen=True)
class LayerReading:
    """What a page's text layer holds, with the cheap measurements taken while reading it."""

    lines: list[TextLine]
    size_px: tuple[int, int]  # the page as `Document.page` renders it
    scale: float  # pixels per PDF point
    unmapped_share: float  # sampled characters PDFium could not map to Unicode (a font without ToUnicode)
    image_share: float  # the page area under its largest image object

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def is_scan(self) -> bool:
        return self.image_share >= SCAN_IMAGE_SHARE


def read_layer(page: pdfium.PdfPage, max_page_pixels: int | None = None) -> LayerReading:
    """The page's text layer as lines with boxes, plus the share of unmapped glyphs and of image area
    (`max_page_pixels`: the render cap, `settings().max_page_pixels` when not given)."""
    width_pt, height_pt = page.get_size()
    width_px, height_px, scale = render_size(width_pt, height_pt, max_page_pixels)
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count > 0 else ""
        lines = list(_lines(page, textpage, text, (width_px, height_px)))
        unmapped = _unmapped_share(textpage, count)
    finally:
        textpage.close()
    return LayerReading(lines, (width_px, height_px), scale, unmapped, _largest_image_share(page, width_pt * height_pt))


def _lines(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, text: str, size_px: tuple[int, int]):
    """Each line between PDFium's generated line breaks: its text (whitespace collapsed) and box.

    The text's indices are PDFium's character indices (its line breaks are characters too)."""
    to_device = _device_transform(page, size_px)
    for match in _LINE.finditer(text):
        stripped = " ".join(match.group().split())
        if stripped:
            box = _range_box(textpage, match.start(), match.end() - match.start(), to_device, size_px)
            if box is not None:
                yield TextLine(stripped, box)


_LINE = re.compile(r"[^\r\n]+")
Affine = tuple[float, float, float, float, float, float]


def _range_box(
    textpage: pdfium.PdfTextPage, start: int, length: int, to_device: Affine, size_px: tuple[int, int]
) -> Box | None:
    """The union of PDFium's rectangles for a character range, in page pixels."""
    rects = textpage.count_rects(start, length)
    if rects <= 0:
        return None
    a, b, c, d, e, f = to_device
    xs: list[float] = []
    ys: list[float] = []
    for index in range(rects):
        left, bottom, right, top = textpage.get_rect(index)
        for x, y in ((left, bottom), (right, top), (left, top), (right, bottom)):
            xs.append(a * x + c * y + e)
            ys.append(b * x + d * y + f)
    return (
        round(max(0.0, min(xs)), 1),
        round(max(0.0, min(ys)), 1),
        round(min(float(size_px[0]), max(xs)), 1),
        round(min(float(size_px[1]), max(ys)), 1),
    )


def _device_transform(page: pdfium.PdfPage, size_px: tuple[int, int]) -> Affine:
    """PDF page coordinates → rendered pixels, as an affine map (a, b, c, d, e, f): x' = a·x + c·y + e,
    y' = b·x + d·y + f. PDFium's `FPDF_PageToDevice` (rotation and crop box included) is affine, so three
    points fix it; per-rectangle calls through ctypes cost more than the rest of a page's reading."""
    import pypdfium2.raw as pdfium_c

    def device(x: float, y: float) -> tuple[float, float]:
        device_x, device_y = ctypes.c_int(), ctypes.c_int()  # whole pixels: 1000-point steps keep the error tiny
        pdfium_c.FPDF_PageToDevice(
            page.raw, 0, 0, size_px[0], size_px[1], 0, x, y, ctypes.byref(device_x), ctypes.byref(device_y)
        )
        return float(device_x.value), float(device_y.value)

    e, f = device(0.0, 0.0)
    x1, y1 = device(1000.0, 0.0)
    x2, y2 = device(0.0, 1000.0)
    return ((x1 - e) / 1000, (y1 - f) / 1000, (x2 - e) / 1000, (y2 - f) / 1000, e, f)


def _unmapped_share(textpage: pdfium.PdfTextPage, count: int) -> float:
    """Share of a spread sample of characters whose font gives no Unicode value for the glyph."""
    import pypdfium2.raw as pdfium_c

    if count <= 0:
        return 0.0
    step = max(1, count // UNICODE_SAMPLE)
    sample = range(0, count, step)
    errors = sum(1 for index in sample if pdfium_c.FPDFText_HasUnicodeMapError(textpage.raw, index) == 1)
    return errors / len(sample)


def _largest_image_share(page: pdfium.PdfPage, page_area: float) -> float:
    """The share of the page covered by its largest image object (top-level objects, read through the raw
    API: pypdfium2's object wrappers cost more than the rest of the page on a text-heavy page)."""
    import pypdfium2.raw as pdfium_c

    largest = 0.0
    edges = [ctypes.c_float() for _ in range(4)]
    for index in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_c.FPDFPage_GetObject(page.raw, index)
        if pdfium_c.FPDFPageObj_GetType(obj) != pdfium_c.FPDF_PAGEOBJ_IMAGE:
            continue
        if pdfium_c.FPDFPageObj_GetBounds(obj, *(ctypes.byref(edge) for edge in edges)):
            left, bottom, right, top = (edge.value for edge in edges)
            largest = max(largest, max(0.0, right - left) * max(0.0, top - bottom))
    return min(1.0, largest / page_area) if page_area > 0 else 0.0
