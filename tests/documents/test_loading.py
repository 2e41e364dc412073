"""Documents: every supported format becomes RGB pages; every bad input gets a human error."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from chatvlmllm.documents import loading as documents
from chatvlmllm.documents.loading import load_document, open_document
from chatvlmllm.errors import DocumentError
from chatvlmllm.settings import settings
from tests.helpers import image_bytes, text_image


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
    monkeypatch.setenv("CHATVLMLLM_MAX_UPLOAD_MB", "0.001")
    with pytest.raises(DocumentError, match="the limit is"):
        load_document(b"x" * 5000, "big.png")


# -- images read the way the camera meant (issue 11) -------------------------------------------
def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_exif_orientation_is_applied():
    upright = text_image(["UP"], size=(300, 100))
    sideways = upright.rotate(90, expand=True)  # stored 100×300, EXIF 6 says: turn it 90° clockwise
    doc = load_document(image_bytes(sideways, "JPEG", exif=_exif(6), quality=95), "phone.jpg")
    assert doc.page(0).size == (300, 100) and doc.page_sizes == [(300, 100)]


def test_sixteen_bit_grey_is_scaled_not_clipped():
    import numpy as np

    grey = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    page = load_document(image_bytes(Image.fromarray(grey)), "deep.png").page(0)
    values = np.asarray(page.convert("L"), dtype=int).ravel()
    assert values.min() == 0 and values.max() == 255
    assert len(set(values.tolist())) > 200  # a ramp, not everything above 255 clipped to white


@pytest.mark.parametrize("mode", ["P", "CMYK", "LA", "1", "I", "F"])
def test_every_mode_becomes_rgb_with_the_same_text_positions(mode):
    source = text_image(["MODES"], size=(200, 60)).convert("L")
    converted = source.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    page = load_document(image_bytes(converted, fmt), f"m.{fmt.lower()}").page(0)
    assert page.mode == "RGB"
    dark = [xy for xy in ((x, y) for x in range(200) for y in range(60)) if page.getpixel(xy)[0] < 128]
    expected = [xy for xy in ((x, y) for x in range(200) for y in range(60)) if source.getpixel(xy) < 128]
    assert abs(len(dark) - len(expected)) <= len(expected) // 10 and expected


def test_an_oversized_tiff_frame_is_named():
    buffer = io.BytesIO()
    small, huge = Image.new("L", (50, 50)), Image.new("L", (12_000, 9_000))
    small.save(buffer, format="TIFF", save_all=True, append_images=[huge], compression="tiff_deflate")
    with pytest.raises(DocumentError, match=r"Page 2 of scan.tiff is 12000×9000 pixels"):
        load_document(buffer.getvalue(), "scan.tiff")


@pytest.mark.parametrize(
    ("size", "rule"),
    [((100_000, 10), "longest side"), ((10, 100_000), "longest side"), ((20_000, 100), "200:1 strip")],
)
def test_pages_the_preview_or_models_cannot_take_are_refused(size, rule):
    with pytest.raises(DocumentError, match=rule):
        load_document(image_bytes(Image.new("L", size, 255)), "odd.png")


def test_a_pdf_over_the_page_limit_says_so():
    over = documents.MAX_PAGES + 1
    with pytest.raises(DocumentError, match=f"has {over} pages; the limit is {documents.MAX_PAGES}"):
        load_document(make_pdf(over), "long.pdf")


def test_a_poster_page_renders_within_the_page_pixel_budget():
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(14_400, 14_400)
    buffer = io.BytesIO()
    pdf.save(buffer)
    doc = load_document(buffer.getvalue(), "poster.pdf")
    width, height = doc.page(0).size
    assert width * height <= settings().max_page_pixels * 1.01 and (width, height) == doc.page_sizes[0]


def test_pages_render_lazily_and_requests_are_bounded(monkeypatch):
    doc = load_document(make_pdf(40), "forty.pdf")
    assert len(doc._pages) == 1  # only page 1, to check it renders
    for index in range(10):
        doc.page(index)
    assert len(doc._pages) <= documents.RENDER_CACHE_PAGES
    monkeypatch.setenv("CHATVLMLLM_MAX_REQUEST_PIXELS", str(doc.page_pixels(0) * 5))
    with pytest.raises(DocumentError, match="Choose fewer pages"):
        doc.pages()
    assert len(doc.pages([0, 1, 2])) == 3


def test_control_characters_in_names_are_escaped():
    doc = load_document(image_bytes(text_image(["x"])), "evil\x1b[31m\u202ename\n.png")
    assert doc.name == "evil\\x1b[31m\\u202ename\\n.png" and doc.name.isprintable()
    with pytest.raises(DocumentError) as caught:
        load_document(b"", "bell\x07.png")
    assert "\x07" not in str(caught.value) and "bell\\x07.png" in str(caught.value)
