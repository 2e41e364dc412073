"""Whole documents through the real offline engine: pages whose text layer fails the check are OCR'd (ocr_auto,
through the engine and OCR caches), the agreement check reads a sample of a scan's layer, and a vision-language
model's request carries the retrieved pages within the pixel budget, labelled with their numbers."""

from __future__ import annotations

import pytest

from chatvlmllm.chat.document_reading import EngineOcr, page_request, reading_job
from chatvlmllm.devtools.pdfs import Layer, PageKind, PageSpec, build_pdf, filler_pages, scan_image
from chatvlmllm.documents.index import DocumentIndex, PageSource, ReadState
from chatvlmllm.documents.layer_check import LayerProblem
from chatvlmllm.documents.loading import load_document
from tests.documents.test_text_layer import ENGLISH

OTHER = [
    "Article 9. Governing law and the resolution of disputes",
    "This agreement is governed by the laws of the country of the seller",
    "and any dispute shall be settled by arbitration in the capital city",
    "under the rules of the chamber of commerce in force at that time.",
    "The language of the arbitration shall be English unless agreed.",
]


@pytest.mark.slow
def test_scans_under_broken_layers_are_ocrd_and_a_good_layer_is_kept(tmp_path):
    pages = [
        PageSpec(ENGLISH, PageKind.SCAN, Layer.NONE),  # a plain scan
        PageSpec(ENGLISH, PageKind.SCAN, Layer.GARBLED),
        PageSpec(ENGLISH, PageKind.SCAN, Layer.GOOD),
        PageSpec(ENGLISH, PageKind.SCAN, Layer.GOOD, image=scan_image(OTHER)),  # real words, wrong page
    ]
    document = load_document(build_pdf(pages), "scans.pdf")
    index = DocumentIndex(tmp_path / "db.sqlite3")
    final = reading_job(document, index, language="en").run()
    assert final.state is ReadState.DONE and final.pages_read == 4
    read = [index.page_text(document.sha256, n) for n in range(1, 5)]
    assert all(page is not None for page in read)
    garbled, good, mismatched = read[1], read[2], read[3]
    assert garbled.source is PageSource.OCR and garbled.verdict.problem is LayerProblem.NOT_WORDS
    assert garbled.reader.startswith("ocr_auto")
    assert any("penalty" in line.text.lower() for line in garbled.lines)  # OCR read the picture
    assert good.source is PageSource.TEXT_LAYER and good.verdict.signals.ocr_agreement > 0.8
    assert mismatched.source is PageSource.OCR and mismatched.verdict.problem is LayerProblem.DISAGREES_WITH_OCR
    assert any("arbitration" in line.text.lower() for line in mismatched.lines)
    # The OCR'd page is found by a question, with boxes of its OCR lines.
    passages = index.search("governed by the laws of the seller, arbitration", [document.sha256])
    assert passages[0].page == 4 and passages[0].boxes


@pytest.mark.slow
def test_the_sampler_reads_line_crops_in_order():
    from PIL import Image, ImageDraw, ImageFont

    from chatvlmllm.devtools.pdfs import FONT_FILE

    font = ImageFont.truetype(str(FONT_FILE), 28)
    crops = []
    for text in ("Penalty for late delivery", "Governing law and disputes"):
        crop = Image.new("RGB", (520, 48), "white")
        ImageDraw.Draw(crop).text((8, 8), text, fill="black", font=font)
        crops.append(crop)
    read = EngineOcr(language="en").sample(crops)
    assert [text.lower() for text in read] == ["penalty for late delivery", "governing law and disputes"]


def test_a_model_request_carries_the_best_pages_within_the_pixel_budget(tmp_path, monkeypatch):
    pages = filler_pages(6, seed=5)
    pages[2], pages[4] = PageSpec(ENGLISH), PageSpec(OTHER)
    document = load_document(build_pdf(pages), "c.pdf")
    index = DocumentIndex(tmp_path / "db.sqlite3")
    reading_job(document, index).run()  # born-digital: no page needs the OCR engine
    passages = index.search("penalty for late delivery and arbitration of disputes", [document.sha256])
    request = page_request(
        "penalty for late delivery and arbitration of disputes?", passages, {document.sha256: document}
    )
    assert {page for _, page in request.pages} == {3, 5}
    assert len(request.message.images) == len(request.pages) and request.page_numbers()[0] in (3, 5)
    assert "[p. 3]" in request.message.text and "[p. 5]" in request.message.text and "cite" in request.message.text
    one_page = document.page_pixels(0)
    monkeypatch.setenv("CHATVLMLLM_MAX_REQUEST_PIXELS", str(one_page + 1))
    assert len(page_request("penalty arbitration", passages, {document.sha256: document}).pages) == 1


def test_a_question_no_passage_matches_sends_the_opening_pages(tmp_path):
    # "Summarise" shares no word with the pages: a model still gets pages to read, the first ones.
    document = load_document(build_pdf(filler_pages(6, seed=7)), "d.pdf")
    index = DocumentIndex(tmp_path / "db.sqlite3")
    reading_job(document, index).run()
    passages = index.search("zzzqx", [document.sha256])
    assert passages == []
    request = page_request("Summarise this document", passages, {document.sha256: document})
    assert request.page_numbers() == (1, 2, 3, 4)
    assert len(request.message.images) == 4 and "Text found on them" not in request.message.text
