"""Documents: uploaded bytes → page images, with a clear error for every bad input.

Images (PNG, JPEG, WebP, BMP, TIFF including multi-page) and PDFs (rendered with
pypdfium2). The type is sniffed from the bytes, not trusted from the file name.

Everything that could later fail is checked at upload, so a stored document can always
be shown and sent to a model: the size of every page (pixels, longest side, aspect
ratio) and the page count. Work is bounded: a page renders to at most
`settings().max_page_pixels`, one page at a time and only when asked for, and one request
may use at most `settings().max_request_pixels` of pages (`check_request`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chatvlmllm.errors import DocumentError
from chatvlmllm.i18n import N_, Message, lazy_message, lazy_plural
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

# The upload, image, page and request limits are settings (`chatvlmllm.settings`), read when used.
# JPEG (the preview's encoding) stops at 65,535 px a side; the Qwen-VL processors refuse an
# aspect ratio of 200 or more. Pages inside both limits display and reach every model.
MAX_SIDE_PX = 30_000
MAX_ASPECT_RATIO = 100
MAX_PAGES = 5_000  # pages render one at a time and are read in the background (documents.reading)
MAX_NAME_CHARS = 200
PDF_DPI = 150
RENDER_CACHE_PAGES = 2  # rendered pages kept per document (a page picker redraws the same page)
SUPPORTED = N_("an image (PNG, JPEG, WebP, BMP, TIFF) or a PDF")  # translated where it is said
# Multi-page: TIFF only. An MPO's second frame is a stereo view or a preview, an animated
# WebP's frames are animation, not pages.
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF", "MPO"})
MULTI_PAGE_FORMATS = frozenset({"TIFF"})

# Pillow raises many kinds of exception on hostile bytes (struct.error, IndexError, ...).
_DECODE_ERRORS = (Exception,)


class DocumentKind(StrEnum):
    IMAGE = "image"
    PDF = "pdf"


@dataclass
class Document:
    """A loaded document: its bytes (kept for the store), page sizes, and pages rendered on demand."""

    name: str
    kind: str  # DocumentKind
    data: bytes = field(repr=False)
    page_count: int
    # Size in pixels of each page as it will render (after orientation and the page cap).
    page_sizes: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _pages: OrderedDict[int, Image.Image] = field(default_factory=OrderedDict, repr=False)

    @functools.cached_property
    def sha256(self) -> str:  # hashed once: a reading job and every question ask for it
        return hashlib.sha256(self.data).hexdigest()

    def page(self, index: int) -> Image.Image:
        """Page `index` (0-based) as an RGB image; only the last few rendered pages are kept."""
        if not 0 <= index < self.page_count:
            raise DocumentError(
                lazy_plural(
                    "{name} has {count} page; page {page} does not exist",
                    "{name} has {count} pages; page {page} does not exist",
                    self.page_count,
                    name=self.name,
                    page=index + 1,
                )
            )
        if index in self._pages:
            self._pages.move_to_end(index)
            return self._pages[index]
        image = _render_pdf_page(self, index) if self.kind == DocumentKind.PDF else _image_frame(self, index)
        self._pages[index] = image
        while len(self._pages) > RENDER_CACHE_PAGES:
            self._pages.popitem(last=False)
        return image

    def page_pixels(self, index: int) -> int:
        if 0 <= index < len(self.page_sizes):
            width, height = self.page_sizes[index]
            return width * height
        return 0

    def check_request(self, indices: list[int]) -> None:
        """Refuse, before rendering anything, a set of pages over the per-request pixel budget.

        One page is always allowed: it passed the per-page limits at upload.
        """
        if len(indices) <= 1:
            return
        total = sum(self.page_pixels(i) for i in indices)
        limit = settings().max_request_pixels
        if total > limit:
            raise DocumentError(
                lazy_plural(
                    "{count} page of {name} is {total} MP; one question can use {limit} MP. Choose fewer pages.",
                    "{count} pages of {name} are {total} MP together; one question can use {limit} MP. "
                    "Choose fewer pages.",
                    len(indices),
                    name=self.name,
                    total=_megapixels(total),
                    limit=_megapixels(limit),
                )
            )

    def pages(self, indices: list[int] | None = None) -> list[Image.Image]:
        wanted = list(indices if indices is not None else range(self.page_count))
        self.check_request(wanted)
        return [self.page(i) for i in wanted]


def safe_name(name: str) -> str:
    """A file name fit to show: control and invisible format characters escaped, length capped."""
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(name))
    shown = shown.strip() or "document"
    return shown if len(shown) <= MAX_NAME_CHARS else shown[: MAX_NAME_CHARS - 1] + "…"


def load_document(data: bytes, name: str = "document") -> Document:
    """Validate bytes and return a Document, or raise DocumentError with a human message."""
    name = safe_name(name)
    if not data:
        raise DocumentError(lazy_message("{name} is empty (0 bytes).", name=name))
    size_mb, limit_mb = len(data) / 1e6, settings().max_upload_mb
    if size_mb > limit_mb:
        raise DocumentError(_too_large(name, size_mb, limit_mb))
    if data[:5] == b"%PDF-":
        return _load_pdf(data, name)
    return _load_image(data, name)


def open_document(path: str | Path) -> Document:
    path = Path(path)
    shown = safe_name(str(path))
    if not path.exists():
        raise DocumentError(lazy_message("{name}: no such file.", name=shown))
    if path.is_dir():
        raise DocumentError(lazy_message("{name} is a folder, not a document.", name=shown))
    try:
        size, limit_mb = path.stat().st_size, settings().max_upload_mb
        if size > limit_mb * 1e6:  # do not read gigabytes just to refuse them
            raise DocumentError(_too_large(shown, size / 1e6, limit_mb))
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(
            lazy_message("Cannot read {name}: {error}.", name=shown, error=exc.strerror or exc)
        ) from None
    return load_document(data, path.name)


# -- page size rules ------------------------------------------------------------------------
def check_page_size(name: str, page: int | None, width: int, height: int, max_image_pixels: int | None = None) -> None:
    """Refuse a page that the preview or the models could not take, saying which rule and why
    (`max_image_pixels`: the setting, read once by a caller that checks many pages)."""
    where = name if page is None else lazy_message("Page {page} of {name}", page=page, name=name)
    size = f"{width}×{height}"
    if width < 1 or height < 1:
        raise DocumentError(lazy_message("{where} has no pixels ({size}).", where=where, size=size))
    limit = max_image_pixels if max_image_pixels is not None else settings().max_image_pixels
    if width * height > limit:
        raise DocumentError(
            lazy_message(
                "{where} is {size} pixels ({pixels} MP), over the {limit} MP limit. Downscale it and upload again.",
                where=where,
                size=size,
                pixels=_megapixels(width * height),
                limit=_megapixels(limit),
            )
        )
    if max(width, height) > MAX_SIDE_PX:
        raise DocumentError(
            lazy_message(
                "{where} is {size} pixels; the longest side may be {longest} px. Downscale or split it and upload "
                "again.",
                where=where,
                size=size,
                longest=format(MAX_SIDE_PX, ","),
            )
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise DocumentError(
            lazy_message(
                "{where} is {size} pixels, a {ratio}:1 strip; pages up to {limit}:1 can be read. Crop or split it "
                "and upload again.",
                where=where,
                size=size,
                ratio=format(ratio, ".0f"),
                limit=MAX_ASPECT_RATIO,
            )
        )


def _too_many_pages(name: str, count: int) -> DocumentError:
    return DocumentError(
        lazy_plural(
            "{name} has {count} page; the limit is {limit}. Split it and upload the part you need.",
            "{name} has {count} pages; the limit is {limit}. Split it and upload the part you need.",
            count,
            name=name,
            limit=MAX_PAGES,
        )
    )


def _too_large(name: str, size_mb: float, limit_mb: float) -> Message:
    return lazy_message(
        "{name} is {size} MB; the limit is {limit} MB.",
        name=name,
        size=format(size_mb, ".0f"),
        limit=format(limit_mb, ".0f"),
    )


def _megapixels(pixels: float) -> str:
    return format(pixels / 1e6, ".0f")


# -- images -----------------------------------------------------------------------------------
def _load_image(data: bytes, name: str) -> Document:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            frames = getattr(img, "n_frames", 1) if fmt in MULTI_PAGE_FORMATS else 1
            if frames > MAX_PAGES:
                raise _too_many_pages(name, frames)
            sizes = _frame_sizes(img, frames) if fmt in IMAGE_FORMATS else []
    except DocumentError:
        raise
    except UnidentifiedImageError:
        raise DocumentError(
            lazy_message(
                "{name} is not a supported document. Upload {supported}.", name=name, supported=Message(SUPPORTED)
            )
        ) from None
    except Image.DecompressionBombError:
        raise DocumentError(
            lazy_message(
                "{name} claims an enormous size and looks like a decompression bomb; it was not opened.", name=name
            )
        ) from None
    except _DECODE_ERRORS as exc:
        raise DocumentError(
            lazy_message("{name} could not be read as an image: {error}.", name=name, error=_why(exc))
        ) from None
    if fmt not in IMAGE_FORMATS:
        raise DocumentError(
            lazy_message(
                "{name} is a {format} image; supported: PNG, JPEG, WebP, BMP, TIFF and PDF.", name=name, format=fmt
            )
        )
    for number, (width, height) in enumerate(sizes, start=1):
        check_page_size(name, number if frames > 1 else None, width, height)
    doc = Document(name=name, kind=DocumentKind.IMAGE, data=data, page_count=frames, page_sizes=sizes)
    for index in range(frames):  # decode now: a truncated file should fail at upload, not at question time
        doc.page(index)
    return doc


def _frame_sizes(img: Image.Image, frames: int) -> list[tuple[int, int]]:
    """Each frame's size as it will be shown (EXIF orientations 5–8 swap width and height)."""
    sizes = []
    limit = settings().max_image_pixels
    for index in range(frames):
        img.seek(index)
        width, height = img.size
        orientation = _orientation(img) if width * height <= limit else 1
        sizes.append((height, width) if orientation in (5, 6, 7, 8) else (width, height))
    return sizes


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)  # ExifTags.Base.Orientation
    except _DECODE_ERRORS:  # a PNG's eXIf chunk may sit after broken image data: decoding will say so
        return 1
    return value if isinstance(value, int) else 1


def _image_frame(doc: Document, index: int) -> Image.Image:
    label = doc.name if doc.page_count == 1 else lazy_message("page {page} of {name}", page=index + 1, name=doc.name)
    try:
        with Image.open(io.BytesIO(doc.data)) as img:
            img.seek(index)
            width, height = img.size
            if width * height > settings().max_image_pixels:  # a later TIFF frame may be far larger than the first
                check_page_size(doc.name, index + 1, width, height)
            return to_rgb(img)
    except DocumentError:
        raise
    except Image.DecompressionBombError:
        raise DocumentError(lazy_message("{name} claims an enormous size; it was not decoded.", name=label)) from None
    except MemoryError:
        raise DocumentError(lazy_message("{name} is too large to decode in memory.", name=label)) from None
    except _DECODE_ERRORS as exc:
        raise DocumentError(
            lazy_message("{name} is damaged or truncated and cannot be decoded ({error}).", name=label, error=_why(exc))
        ) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB image the way the camera meant it.

    EXIF orientation applied; 16-bit and float samples scaled into 0–255 (Pillow's own
    conversion clips them, which turns most of a 16-bit scan white); transparency onto
    white (transparent screenshots read black otherwise); palette and CMYK converted.
    """
    img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _scale_to_8bit(img).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    samples = np.asarray(img, dtype=np.float64)
    top = float(samples.max()) if samples.size else 0.0
    if img.mode == "F" and float(samples.min()) >= 0.0 and top <= 1.0:
        full_scale = 1.0  # normalised floats
    elif top <= 255:
        full_scale = 255.0  # 8-bit values stored in a wider mode
    elif top <= 65535:
        full_scale = 65535.0
    else:
        full_scale = top
    scaled = np.clip(samples * (255.0 / full_scale), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


# -- PDFs -------------------------------------------------------------------------------------
def _load_pdf(data: bytes, name: str) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        # PDFium's error code is stale after an earlier failed load, so read the file's own markers.
        if b"/Encrypt" in data:
            raise DocumentError(
                lazy_message(
                    "{name} is encrypted (password protected). Remove the password and upload again.", name=name
                )
            ) from None
        if re.search(rb"/Count\s+0\b", data):
            raise DocumentError(lazy_message("{name} has no pages.", name=name)) from None
        raise DocumentError(lazy_message("{name} is not a readable PDF ({error}).", name=name, error=exc)) from None
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentError(lazy_message("{name} has no pages.", name=name))
        if count > MAX_PAGES:
            raise _too_many_pages(name, count)
        sizes = []
        limits = settings()  # read once: a thousand pages are sized here
        for index in range(count):
            width_pt, height_pt = pdf.get_page_size(index)
            width, height, _ = _render_size(width_pt, height_pt, limits.max_page_pixels)
            check_page_size(name, index + 1 if count > 1 else None, width, height, limits.max_image_pixels)
            sizes.append((width, height))
    except pdfium.PdfiumError as exc:
        raise DocumentError(lazy_message("{name} is not a readable PDF ({error}).", name=name, error=exc)) from None
    finally:
        pdf.close()
    doc = Document(name=name, kind=DocumentKind.PDF, data=data, page_count=count, page_sizes=sizes)
    doc.page(0)
    return doc


def render_size(width_pt: float, height_pt: float, max_page_pixels: int | None = None) -> tuple[int, int, float]:
    """(width px, height px, scale) of a page of this size in points, as `Document.page` renders it
    (`max_page_pixels`: the setting, read once by a caller that sizes many pages)."""
    return _render_size(width_pt, height_pt, max_page_pixels)


def _render_size(width_pt: float, height_pt: float, max_page_pixels: int | None = None) -> tuple[int, int, float]:
    """(width px, height px, scale) of a page at PDF_DPI, scaled down to the page pixel limit."""
    scale = PDF_DPI / 72
    limit = max_page_pixels if max_page_pixels is not None else settings().max_page_pixels
    if width_pt * height_pt * scale * scale > limit:
        scale = (limit / max(width_pt * height_pt, 1e-9)) ** 0.5
    return max(1, round(width_pt * scale)), max(1, round(height_pt * scale)), scale


def _render_pdf_page(doc: Document, index: int) -> Image.Image:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(doc.data)
    try:
        page = pdf[index]
        try:
            width_pt, height_pt = page.get_size()  # points (1/72 inch)
            _, _, scale = _render_size(width_pt, height_pt)
            return page.render(scale=scale).to_pil().convert("RGB")
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise DocumentError(
            lazy_message(
                "Page {page} of {name} cannot be rendered ({error}).", page=index + 1, name=doc.name, error=exc
            )
        ) from None
    except MemoryError:
        raise DocumentError(
            lazy_message("Page {page} of {name} is too large to render in memory.", page=index + 1, name=doc.name)
        ) from None
    finally:
        pdf.close()


def _why(exc: BaseException) -> str:
    """An exception as a short clause; never empty."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
