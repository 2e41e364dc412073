"""Documents: every supported format becomes RGB pages; every bad input gets a human error."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from chatvlmllm import documents
from chatvlmllm.documents import load_document, open_document
from chatvlmllm.errors import DocumentError
from tests.conftest import image_bytes, text_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_image_formats(fmt):
    doc = load_document(image_bytes(text_image(["hello"]), fmt), f"page.{fmt.lower()}")
    assert (doc.kind, doc.page_count) == ("image", 1)
    page = doc.page(0)
    assert page.mode == "RGB" and page.size == (640, 360)


def test_multipage_tiff():
    frames = [text_image([f"page {i}"]) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    doc = load_document(buffer.getvalue(), "scan.tiff")
    assert doc.page_count == 3
    assert [p.tobytes() for p in doc.pages()] == [f.tobytes() for f in frames]


def test_transparent_png_gets_a_white_background():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    page = load_document(image_bytes(image), "shot.png").page(0)
    assert page.getpixel((5, 5)) == (255, 255, 255)


def make_pdf(pages: int) -> bytes:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(595, 842)  # A4 in points
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def test_pdf_pages_render_at_150_dpi():
    doc = load_document(make_pdf(2), "two.pdf")
    assert (doc.kind, doc.page_count) == ("pdf", 2)
    page = doc.page(1)
    assert page.mode == "RGB"
    assert abs(page.width - 595 * 150 / 72) <= 1
    with pytest.raises(DocumentError, match="has 2 page"):
        doc.page(2)


def test_open_path(tmp_path, page_png):
    path = tmp_path / "a.png"
    path.write_bytes(page_png)
    assert open_document(path).name == "a.png"
    with pytest.raises(DocumentError, match="no such file"):
        open_document(tmp_path / "missing.png")
    with pytest.raises(DocumentError, match="is a folder"):
        open_document(tmp_path)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's signature)."""
    raw = image_bytes(Image.new("1", (8, 8)))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return raw[:8] + patched + raw[8 + 25 :]


def _encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"just some text, not a picture", "not a supported document"),
        (b"GIF89a" + b"\x00" * 40, "could not be read|not a supported"),
        (image_bytes(text_image(["x"]))[:200], "damaged or truncated|could not be read"),
        (_png_claiming(40_000, 40_000), "decompression bomb|over the"),
        (_png_claiming(12_000, 9_000), "over the 80 MP limit"),
        (_encrypted_pdf(), "encrypted"),
        (make_pdf(0), "no pages"),
        (b"%PDF-1.7 garbage", "not a readable PDF"),
    ],
    ids=["zero-bytes", "text", "gif-junk", "truncated", "bomb", "too-many-pixels", "encrypted", "no-pages", "bad-pdf"],
)
def test_bad_input_gets_a_human_error(data, message):
    with pytest.raises(DocumentError, match=message):
        load_document(data, "upload.bin")


def test_gif_is_refused_by_name():
    gif = image_bytes(Image.new("RGB", (4, 4)), "GIF")
    with pytest.raises(DocumentError, match="GIF image; supported"):
        load_document(gif, "anim.gif")


def test_size_limit(monkeypatch):
    monkeypatch.setattr(documents, "MAX_UPLOAD_MB", 0.001)
    with pytest.raises(DocumentError, match="the limit is"):
        load_document(b"x" * 5000, "big.png")
