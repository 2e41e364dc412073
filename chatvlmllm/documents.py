"""Documents: uploaded bytes → page images, with a clear error for every bad input.

Images (PNG, JPEG, WebP, BMP, TIFF including multi-page) and PDFs (rendered with
pypdfium2). The type is sniffed from the bytes, not trusted from the file name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from chatvlmllm.errors import DocumentError

MAX_UPLOAD_MB = float(os.environ.get("CHATVLMLLM_MAX_UPLOAD_MB", "50"))
# Decoded-size cap against decompression bombs (a 40 kB PNG can claim 50,000² pixels).
MAX_IMAGE_PIXELS = int(os.environ.get("CHATVLMLLM_MAX_IMAGE_PIXELS", str(80_000_000)))
MAX_PAGES = 500
PDF_DPI = 150
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF", "MPO"})  # MPO: JPEG from phones


@dataclass
class Document:
    """A loaded document: its bytes (kept for the store) and page images (rendered lazily)."""

    name: str
    kind: str  # "image" | "pdf"
    data: bytes = field(repr=False)
    page_count: int
    _pages: dict[int, Image.Image] = field(default_factory=dict, repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def page(self, index: int) -> Image.Image:
        """Page `index` (0-based) as an RGB image."""
        if not 0 <= index < self.page_count:
            raise DocumentError(f"{self.name} has {self.page_count} page(s); page {index + 1} does not exist")
        if index not in self._pages:
            self._pages[index] = _render_pdf_page(self, index) if self.kind == "pdf" else _image_frame(self, index)
        return self._pages[index]

    def pages(self, indices: list[int] | None = None) -> list[Image.Image]:
        return [self.page(i) for i in (indices if indices is not None else range(self.page_count))]


def load_document(data: bytes, name: str = "document") -> Document:
    """Validate bytes and return a Document, or raise DocumentError with a human message."""
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes).")
    size_mb = len(data) / 1e6
    if size_mb > MAX_UPLOAD_MB:
        raise DocumentError(f"{name} is {size_mb:.0f} MB; the limit is {MAX_UPLOAD_MB:.0f} MB.")
    if data[:5] == b"%PDF-":
        return _load_pdf(data, name)
    return _load_image(data, name)


def open_document(path: str | Path) -> Document:
    path = Path(path)
    if not path.exists():
        raise DocumentError(f"{path}: no such file.")
    if path.is_dir():
        raise DocumentError(f"{path} is a folder, not a document.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return load_document(data, path.name)


def _load_image(data: bytes, name: str) -> Document:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
            frames = getattr(img, "n_frames", 1)
    except UnidentifiedImageError:
        raise DocumentError(
            f"{name} is not a supported document. Upload an image (PNG, JPEG, WebP, BMP, TIFF) or a PDF."
        ) from None
    except Image.DecompressionBombError:
        raise DocumentError(
            f"{name} claims an enormous size and looks like a decompression bomb; it was not opened."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DocumentError(f"{name} could not be read as an image: {exc}.") from None
    if fmt not in IMAGE_FORMATS:
        raise DocumentError(f"{name} is a {fmt} image; supported: PNG, JPEG, WebP, BMP, TIFF and PDF.")
    if width * height > MAX_IMAGE_PIXELS:
        raise DocumentError(
            f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} MP), over the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit. Downscale it and upload again."
        )
    doc = Document(name=name, kind="image", data=data, page_count=min(frames, MAX_PAGES))
    doc.page(0)  # decode now: a truncated file should fail at upload, not at question time
    return doc


def _image_frame(doc: Document, index: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(doc.data)) as img:
            frame = next(f for i, f in enumerate(ImageSequence.Iterator(img)) if i == index)
            return _to_rgb(frame)
    except (OSError, SyntaxError, ValueError, StopIteration, Image.DecompressionBombError) as exc:
        raise DocumentError(f"{doc.name} is damaged or truncated and cannot be decoded ({exc}).") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    img.load()
    if img.mode in ("RGBA", "LA", "P") and ("transparency" in img.info or img.mode != "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")  # transparent screenshots read black otherwise
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _load_pdf(data: bytes, name: str) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        # PDFium's error code is stale after an earlier failed load, so read the file's own markers.
        if b"/Encrypt" in data:
            raise DocumentError(
                f"{name} is encrypted (password protected). Remove the password and upload again."
            ) from None
        if re.search(rb"/Count\s+0\b", data):
            raise DocumentError(f"{name} has no pages.") from None
        raise DocumentError(f"{name} is not a readable PDF ({exc}).") from None
    try:
        count = len(pdf)
    finally:
        pdf.close()
    if count == 0:
        raise DocumentError(f"{name} has no pages.")
    doc = Document(name=name, kind="pdf", data=data, page_count=min(count, MAX_PAGES))
    doc.page(0)
    return doc


def _render_pdf_page(doc: Document, index: int) -> Image.Image:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(doc.data)
    try:
        page = pdf[index]
        width, height = page.get_size()  # points (1/72 inch)
        scale = PDF_DPI / 72
        if width * height * scale * scale > MAX_IMAGE_PIXELS:
            scale = (MAX_IMAGE_PIXELS / (width * height)) ** 0.5
        image = page.render(scale=scale).to_pil().convert("RGB")
        page.close()
        return image
    except pdfium.PdfiumError as exc:
        raise DocumentError(f"Page {index + 1} of {doc.name} cannot be rendered ({exc}).") from None
    finally:
        pdf.close()
