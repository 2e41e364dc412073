"""PDFs made at test and benchmark time: born-digital pages, scans, and scans under a broken text layer.

Tests and `benchmarks/whole_document.py` need PDFs whose text layer is known to be good or known to be
broken in the ways real files are (issue 18): a layer whose font has no ToUnicode map (the reader gets
mojibake such as `Ðàçäåë` for `Раздел`), an invisible OCR layer of poor quality under a scan, and a layer
that covers only part of the page. They are built with reportlab (a dev dependency) and never committed.

- `PageKind.BORN_DIGITAL`: the lines typeset in DejaVu Sans (a real embedded font with its ToUnicode map).
- `PageKind.SCAN`: a picture of the page (given, or the lines drawn by Pillow), with a `Layer` under it
  drawn in text render mode 3 (invisible, as OCR tools write it).

The mojibake layer writes each line's cp1251 bytes through Helvetica's WinAnsi encoding: exactly the
text a reader extracts from an old Cyrillic font that put its glyphs at Latin-1 codes without a ToUnicode
map, while the page shows Cyrillic.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILE = FONT_DIR / "DejaVuSans.ttf"
FONT_NAME = "DejaVuSans"
A4 = (595.0, 842.0)  # points
MARGIN = 56.0
FONT_SIZE = 11.0
LEADING = 15.0
SCAN_DPI = 150


class PageKind(StrEnum):
    BORN_DIGITAL = "born_digital"
    SCAN = "scan"


class Layer(StrEnum):
    """The text layer under a scanned page."""

    NONE = "none"
    GOOD = "good"  # the page's own lines, invisible, where they are drawn
    MOJIBAKE = "mojibake"  # cp1251 bytes read as WinAnsi: what a font without ToUnicode gives
    GARBLED = "garbled"  # a poor OCR layer: most letters of most words wrong
    PARTIAL = "partial"  # the first lines only


@dataclass
class PageSpec:
    lines: list[str]
    kind: PageKind = PageKind.BORN_DIGITAL
    layer: Layer = Layer.NONE
    image: Image.Image | None = None  # a scan's picture; None: the lines drawn as a scan
    font_size: float = FONT_SIZE
    size_pt: tuple[float, float] | None = None  # None: the document's size (A4); a scan may take its image's
    extra: dict[str, object] = field(default_factory=dict)


def mojibake(text: str) -> str:
    """`Раздел` → `Ðàçäåë`: the cp1251 bytes read as cp1252 (what a reader sees without ToUnicode)."""
    return text.encode("cp1251", errors="replace").decode("cp1252", errors="replace")


def garble(text: str, seed: int = 0, share: float = 0.6) -> str:
    """A poor OCR layer: `share` of the letters replaced by look-alikes or random letters."""
    rng = random.Random(seed)
    alphabet = "ilIl1|0Ooecaunrmhbdpqgstfjkvwxyz"
    return "".join(ch if not ch.isalpha() or rng.random() > share else rng.choice(alphabet) for ch in text)


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(FONT_FILE)))


def scan_image(lines: Sequence[str], size_pt: tuple[float, float] = A4, font_size: float = FONT_SIZE) -> Image.Image:
    """The lines drawn on a white page at SCAN_DPI, where `build_pdf` would typeset them."""
    scale = SCAN_DPI / 72
    image = Image.new("L", (round(size_pt[0] * scale), round(size_pt[1] * scale)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT_FILE), round(font_size * scale))
    for index, line in enumerate(lines):
        x, baseline = line_origin(index, size_pt)
        draw.text((x * scale, (size_pt[1] - baseline) * scale), line, fill=0, font=font, anchor="ls")
    return image.convert("RGB")


def line_origin(index: int, size_pt: tuple[float, float] = A4) -> tuple[float, float]:
    """Where line `index` starts: x and baseline y in PDF points (origin bottom left)."""
    return MARGIN, size_pt[1] - MARGIN - LEADING * (index + 1)


def build_pdf(pages: Sequence[PageSpec], size_pt: tuple[float, float] = A4) -> bytes:
    """A PDF with one page per spec (see the module docstring for the kinds and layers)."""
    from reportlab.pdfgen import canvas

    _register_font()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=size_pt, pageCompression=1)
    for number, spec in enumerate(pages):
        page_size = spec.size_pt or size_pt
        pdf.setPageSize(page_size)
        if spec.kind is PageKind.SCAN:
            _draw_scan(pdf, spec, page_size, seed=number)
        else:
            _draw_lines(pdf, spec.lines, FONT_NAME, spec.font_size, page_size, invisible=False)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _draw_scan(pdf, spec: PageSpec, size_pt: tuple[float, float], seed: int) -> None:
    from reportlab.lib.utils import ImageReader

    picture = spec.image if spec.image is not None else scan_image(spec.lines, size_pt, spec.font_size)
    encoded = io.BytesIO()
    picture.convert("RGB").save(encoded, format="JPEG", quality=80)
    encoded.seek(0)
    pdf.drawImage(ImageReader(encoded), 0, 0, width=size_pt[0], height=size_pt[1])
    lines = list(spec.lines)
    if spec.layer is Layer.NONE:
        return
    if spec.layer is Layer.MOJIBAKE:
        _draw_lines(pdf, [mojibake(line) for line in lines], "Helvetica", spec.font_size, size_pt, invisible=True)
        return
    if spec.layer is Layer.GARBLED:
        lines = [garble(line, seed * 1000 + i) for i, line in enumerate(lines)]
    elif spec.layer is Layer.PARTIAL:
        lines = lines[: max(1, len(lines) // 5)]
    _draw_lines(pdf, lines, FONT_NAME, spec.font_size, size_pt, invisible=True)


def _draw_lines(
    pdf, lines: Sequence[str], font: str, font_size: float, size_pt: tuple[float, float], invisible: bool
) -> None:
    text = pdf.beginText()
    text.setFont(font, font_size)
    if invisible:
        text.setTextRenderMode(3)
    for index, line in enumerate(lines):
        x, baseline = line_origin(index, size_pt)
        text.setTextOrigin(x, baseline)
        text.textOut(line)
    pdf.drawText(text)


def scan_page(image: Image.Image, lines: Sequence[str], layer: Layer = Layer.NONE, dpi: int = SCAN_DPI) -> PageSpec:
    """A scanned page the size of its picture at `dpi`, with a text layer of `lines`."""
    size = (image.width * 72 / dpi, image.height * 72 / dpi)
    font_size = max(4.0, min(FONT_SIZE, (size[1] - 2 * MARGIN) / max(1, len(lines)) / 1.4))
    return PageSpec(list(lines), PageKind.SCAN, layer, image=image, font_size=font_size, size_pt=size)


def write_pdf(path: Path, pages: Sequence[PageSpec]) -> Path:
    path.write_bytes(build_pdf(pages))
    return path


# -- filler text for long documents ------------------------------------------------------------
def filler_pages(count: int, seed: int = 0, lines_per_page: int = 40, language: str = "en") -> list[PageSpec]:
    """Pages of plausible running text (common words at their real frequencies, from wordfreq): distractors
    that share a document's everyday vocabulary but none of its specific passages."""
    from wordfreq import top_n_list

    rng = random.Random(seed)
    words = top_n_list(language, 3000)
    weights = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(words))))
    pages = []
    for _ in range(count):
        lines = []
        for _ in range(lines_per_page):
            chosen = rng.choices(words, cum_weights=weights, k=rng.randint(9, 13))
            lines.append(" ".join(chosen).capitalize() + ".")
        pages.append(PageSpec(lines))
    return pages
