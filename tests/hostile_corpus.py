"""Hostile and odd uploads and transcripts, generated at test time (no binary blobs in the repo).

Each upload is (class, name, bytes); each transcript is (name, text). The class groups
files for the memory report (peak RSS per class).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tests.helpers import image_bytes, text_image


@dataclass(frozen=True)
class Upload:
    kind: str  # file class for the memory report
    name: str
    data: bytes


def _png_header_only(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG that claims a size and carries one empty compressed row: a decompression-bomb header."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _png_zero_bomb(width: int, height: int) -> bytes:
    """A real, fully valid PNG of zeros: tiny on disk, huge decoded."""
    raw = zlib.compressobj(9)
    row = b"\0" * (1 + width)
    body = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _pdf(pages: list[tuple[float, float]]) -> bytes:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for width, height in pages:
        pdf.new_page(width, height)
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def _tiff(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    image = text_image(["SIDEWAYS 42"]).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return image_bytes(image, "JPEG", exif=exif.tobytes())


def _sixteen_bit_png() -> bytes:
    grey = np.asarray(text_image(["DEEP 16"]).convert("L"), dtype=np.uint16) * 257
    return image_bytes(Image.fromarray(grey))


def hostile_uploads() -> Iterator[Upload]:
    page = text_image(["INVOICE 7", "TOTAL 3.50"])
    png = image_bytes(page)
    # Ordinary and odd-but-valid images: accepted.
    yield Upload("valid", "page.png", png)
    yield Upload("valid", "page.jpg", image_bytes(page, "JPEG"))
    yield Upload("valid", "page.webp", image_bytes(page, "WEBP"))
    yield Upload("valid", "page.bmp", image_bytes(page, "BMP"))
    yield Upload("valid", "page.tiff", image_bytes(page, "TIFF"))
    yield Upload("modes", "grey.png", image_bytes(page.convert("L")))
    yield Upload("modes", "bilevel.png", image_bytes(page.convert("1")))
    yield Upload("modes", "palette.png", image_bytes(page.convert("P")))
    yield Upload("modes", "alpha.png", image_bytes(page.convert("RGBA")))
    yield Upload("modes", "grey-alpha.png", image_bytes(page.convert("LA")))
    yield Upload("modes", "cmyk.jpg", image_bytes(page.convert("CMYK"), "JPEG"))
    yield Upload("modes", "cmyk.tiff", image_bytes(page.convert("CMYK"), "TIFF"))
    yield Upload("modes", "sixteen-bit.png", _sixteen_bit_png())
    yield Upload("modes", "float.tiff", image_bytes(Image.fromarray(np.full((50, 80), 0.5, np.float32)), "TIFF"))
    yield Upload("modes", "exif-rotated.jpg", _exif_rotated_jpeg())
    yield Upload("modes", "one-pixel.png", image_bytes(Image.new("RGB", (1, 1), "white")))
    yield Upload("modes", "animated.webp", _animated_webp(page))
    yield Upload("modes", "three-pages.tiff", _tiff([page, page.rotate(180), page]))
    # Large but within every limit (79 MP): accepted, and the memory bound must hold.
    yield Upload("large", "79-megapixel.png", image_bytes(Image.new("L", (8_900, 8_900), 255)))
    # Huge or extreme geometry: refused with the rule.
    yield Upload("geometry", "strip-wide.png", image_bytes(Image.new("L", (100_000, 10), 255)))
    yield Upload("geometry", "strip-tall.png", image_bytes(Image.new("L", (10, 100_000), 255)))
    yield Upload("geometry", "strip-200.png", image_bytes(Image.new("L", (20_000, 100), 255)))
    yield Upload("geometry", "side-40k.png", image_bytes(Image.new("L", (40_000, 1_000), 255)))
    yield Upload(
        "geometry", "tiff-second-frame-huge.tiff", _tiff([Image.new("L", (50, 50)), Image.new("L", (12_000, 9_000))])
    )
    yield Upload("bombs", "claims-50k-square.png", _png_header_only(50_000, 50_000))
    yield Upload("bombs", "claims-2g-wide.png", _png_header_only(2**31 - 1, 1))
    yield Upload("bombs", "zero-bomb-9k.png", _png_zero_bomb(9_500, 9_500))
    yield Upload("bombs", "claims-16bit-30k.png", _png_header_only(30_000, 30_000, 16, 6))
    # PDFs, fine and hostile.
    yield Upload("pdf", "a4.pdf", _pdf([(595, 842)]))
    yield Upload("pdf", "a4-twenty.pdf", _pdf([(595, 842)] * 20))
    yield Upload("pdf", "poster-14400pt.pdf", _pdf([(14_400, 14_400)] * 16))
    yield Upload("pdf", "thousand-pages.pdf", _pdf([(200, 200)] * 1_000))
    yield Upload("pdf", "strip-page.pdf", _pdf([(14_400, 20)]))
    yield Upload("pdf", "tiny-page.pdf", _pdf([(1, 1)]))
    yield Upload("pdf", "truncated.pdf", _pdf([(595, 842)])[:300])
    yield Upload("pdf", "header-only.pdf", b"%PDF-1.7\n")
    yield Upload("pdf", "encrypted.pdf", b"%PDF-1.4\n1 0 obj<</Encrypt 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF")
    yield Upload("pdf", "no-pages.pdf", b"%PDF-1.4\n1 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n%%EOF")
    # Broken or foreign bytes.
    yield Upload("junk", "empty.png", b"")
    yield Upload("junk", "text.png", b"hello, I am not an image\n" * 10)
    yield Upload("junk", "truncated.png", png[: len(png) // 2])
    yield Upload("junk", "truncated.jpg", image_bytes(page, "JPEG")[:400])
    yield Upload("junk", "png-signature-only.png", b"\x89PNG\r\n\x1a\n")
    yield Upload("junk", "gif.gif", image_bytes(page.convert("P"), "GIF"))
    yield Upload("junk", "ico.ico", image_bytes(page.resize((64, 64)), "ICO"))
    yield Upload("junk", "zip.zip", b"PK\x03\x04" + bytes(200))
    yield Upload("junk", "html.png", b"<html><script>alert(1)</script></html>")
    yield Upload("junk", "random.bin", np.random.default_rng(7).bytes(4096))
    yield Upload("junk", "flipped-bits.png", _flip_bits(png))
    yield Upload("junk", "svg.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><image href="http://x/y"/></svg>')
    # Names: control characters, bidi overrides, paths, very long.
    yield Upload("names", "evil\x1b[31mred\x07.png", png)
    yield Upload("names", "inv\u202egnp.exe", png)
    yield Upload("names", "../../etc/passwd.png", png)
    yield Upload("names", "n" * 5_000 + ".png", png)
    yield Upload("names", "new\nline\r.png", png)


def _animated_webp(page: Image.Image) -> bytes:
    buffer = io.BytesIO()
    page.save(buffer, format="WEBP", save_all=True, append_images=[page.rotate(90)], duration=100)
    return buffer.getvalue()


def _flip_bits(data: bytes) -> bytes:
    rng = np.random.default_rng(11)
    mutable = bytearray(data)
    for index in rng.integers(40, len(data), 60):
        mutable[index] ^= 0xFF
    return bytes(mutable)


# -- transcripts --------------------------------------------------------------------------------
def _transcript(turns: list, **top) -> dict:
    return {"format": "chatvlmllm.transcript", "version": 1, "title": "hostile", "turns": turns, **top}


def _answer(**fields) -> dict:
    return {"role": "assistant", "text": "ok", **fields}


def hostile_transcripts() -> Iterator[tuple[str, str]]:
    ok_user = {"role": "user", "text": "hi"}
    cases: dict[str, object] = {
        "seconds-string": _transcript(
            [ok_user, _answer(attempts=[{"model": "m", "outcome": "error", "seconds": "slow"}])]
        ),
        "seconds-nan": _transcript([ok_user, _answer(attempts=[{"model": "m", "seconds": float("nan")}])]),
        "seconds-negative": _transcript([ok_user, _answer(attempts=[{"model": "m", "seconds": -5}])]),
        "metrics-strings": _transcript([ok_user, _answer(metrics={"total_s": "fast", "tokens_per_s": "many"})]),
        "metrics-list": _transcript([ok_user, _answer(metrics=[1, 2])]),
        "metrics-huge-int": _transcript([ok_user, _answer(metrics={"new_tokens": 10**400})]),
        "updated-2099": _transcript([ok_user], updated_at="2099-01-01T00:00:00+00:00"),
        "duplicate-started": _transcript([ok_user, _answer(started_at="2026-01-01T00:00:00+00:00")] * 2),
        "role-bogus": _transcript([{"role": "root", "text": "x"}]),
        "text-number": _transcript([{"role": "user", "text": 5}]),
        "text-missing": _transcript([{"role": "user"}]),
        "pages-strings": _transcript([{**ok_user, "pages": ["1", "2"]}]),
        "pages-zero": _transcript([{**ok_user, "pages": [0]}]),
        "pages-bool": _transcript([{**ok_user, "pages": [True]}]),
        "attempts-not-objects": _transcript([ok_user, _answer(attempts=["x", 3])]),
        "extras-deep": _transcript([ok_user, _answer(extras={"a": _nest(50)})]),
        "layout-garbage": _transcript([ok_user, _answer(extras={"layout": {"elements": [{"bbox": "x"}]}})]),
        "layout-image-size-str": _transcript(
            [ok_user, _answer(extras={"layout": {"elements": [], "image_size": "big"}})]
        ),
        "settings-string": _transcript([{**ok_user, "settings": "fast"}]),
        "turns-dict": _transcript({"0": ok_user}),
        "turns-too-many": _transcript([ok_user, _answer()] * 1_500),
        "title-huge": _transcript([ok_user], title="T" * 100_000),
        "id-path": _transcript([ok_user], id="../../etc"),
        "version-future": {**_transcript([ok_user]), "version": 99},
        "version-bool": {**_transcript([ok_user]), "version": True},
        "format-missing": {"version": 1, "turns": []},
        "top-list": [1, 2, 3],
        "top-null": None,
        "error-number": _transcript([ok_user, _answer(error=404)]),
        "sha-object": _transcript([{**ok_user, "document_sha256": {"x": 1}}]),
        "incomplete-string": _transcript([ok_user, _answer(incomplete="yes")]),
        "valid-with-unknown-keys": _transcript([{**ok_user, "mood": "happy"}, _answer(extra_field=[1])]),
    }
    for name, payload in cases.items():
        yield name, json.dumps(payload)
    yield "not-json", "{this is not json"
    yield "nested-200k", "[" * 200_000 + "]" * 200_000
    yield "nested-object-200k", '{"a":' * 200_000 + "1" + "}" * 200_000
    yield "binary", "\x00\x01\x02 not text"


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value
