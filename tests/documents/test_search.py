"""Search in the OCR'd text: matching lines found and highlighted on a real receipt; bad images fail clearly."""

from __future__ import annotations

import pytest
from PIL import Image

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.documents.search import highlight, latest_ocr_text, search_lines
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.errors import DocumentError
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from tests.helpers import SHARED_EVAL, image_bytes


@pytest.fixture(scope="module")
def rapidocr():
    cache = EngineCache()
    spec = load_catalog()["rapidocr"]
    yield cache.get(spec, plan_load(probe(), spec))
    cache.unload()


def real_receipt() -> Image.Image:
    from chatvlmllm.documents.loading import open_document

    path = SHARED_EVAL / "images" / "receipt_000.jpg"
    if not path.is_file():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    return open_document(path).page(0)


@pytest.mark.slow
def test_search_highlights_the_total_lines_on_a_real_receipt(rapidocr):
    page = real_receipt()
    stream = rapidocr.stream([Message("user", "Extract all text", [page])])
    stream.consume()
    lines = stream.extras["lines"]
    matches = search_lines(lines, "total")
    assert matches and all("total" in m.text.casefold() or m.similarity < 100 for m in matches)
    assert matches[0].similarity == 100.0 and matches[0].page == 1
    marked = highlight(page, matches)
    assert marked.size == page.size
    x0, y0, _x1, y1 = (round(v) for v in matches[0].box)
    inside = (x0 + 1, (y0 + y1) // 2)
    assert marked.getpixel(inside) != page.convert("RGB").getpixel(inside)  # painted over
    # Lines that do not match stay as they were.
    untouched = [line for line in lines if "total" not in line["text"].casefold()]
    far = next(
        line for line in untouched if all(abs(line["box"][1] - m.box[1]) > 3 * (m.box[3] - m.box[1]) for m in matches)
    )
    spot = (round(far["box"][0]) + 1, round((far["box"][1] + far["box"][3]) / 2))
    assert marked.getpixel(spot) == page.convert("RGB").getpixel(spot)


def test_search_forgives_ocr_slips_but_not_short_noise():
    lines = [
        {"page": 1, "text": "T0TAL RM 9.00", "box": [10, 10, 200, 30]},
        {"page": 2, "text": "CASH 10.00", "box": [10, 40, 200, 60]},
    ]
    assert [m.text for m in search_lines(lines, "TOTAL")] == ["T0TAL RM 9.00"]
    assert [m.page for m in search_lines(lines, "cash")] == [2]
    assert search_lines(lines, "xyz") == [] and search_lines(lines, "   ") == []


def test_the_latest_answer_with_lines_and_its_pages_are_found():
    question = Turn("user", "Extract all text", document_sha256="abc", pages=[3])
    answer = Turn("assistant", "TOTAL", extras={"lines": [{"page": 1, "text": "TOTAL", "box": [0, 0, 5, 5]}]})
    follow_up = Turn("user", "thanks")
    chat = Turn("assistant", "You're welcome")
    found = latest_ocr_text([question, answer, follow_up, chat], "abc")
    assert found is not None and found.document_page(1) == 3 and found.lines[0]["text"] == "TOTAL"
    assert latest_ocr_text([question, answer], "another document") is None


def test_bad_images_still_give_a_clear_one_line_error(rapidocr):
    from chatvlmllm.documents.loading import load_document

    with pytest.raises(DocumentError) as refused:
        load_document(b"this is not an image at all", "scan.png")
    assert "\n" not in str(refused.value) and str(refused.value)
    truncated = image_bytes(Image.new("RGB", (400, 300), "white"), "JPEG")[:200]
    with pytest.raises(DocumentError) as broken:
        load_document(truncated, "scan.jpg").page(0)
    assert "\n" not in str(broken.value)
    # A blank page is read as no text, with the reason recorded, not an exception.
    stream = rapidocr.stream(
        [Message("user", "Extract all text", [Image.new("RGB", (600, 400), "white")])],
        GenerationSettings(options={"ocr_cache": False}),
    )
    assert stream.consume().strip() == ""
    assert stream.extras["pages"][0]["reason"] == "no text was found on the page"
