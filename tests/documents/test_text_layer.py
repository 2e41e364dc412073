"""A PDF page's text layer (lines with boxes in page pixels) and the check that decides whether to trust it:
a born-digital layer is used; a mojibake layer (no ToUnicode), a poor invisible OCR layer under a scan and a
layer covering part of a scan are rejected, each for its own measured reason."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from chatvlmllm.devtools.pdfs import MARGIN, Layer, PageKind, PageSpec, build_pdf, line_origin, mojibake
from chatvlmllm.documents.layer_check import LayerProblem, judge_scan, judge_text
from chatvlmllm.documents.loading import PDF_DPI, load_document
from chatvlmllm.documents.text_layer import read_layer

RUSSIAN = [
    "Раздел 5. Ответственность сторон и порядок уплаты штрафов",
    "За просрочку поставки товара поставщик уплачивает покупателю пеню",
    "в размере одной десятой процента от стоимости недопоставленного товара",
    "за каждый день просрочки, но не более десяти процентов его стоимости.",
    "Уплата неустойки не освобождает стороны от исполнения обязательств.",
]
ENGLISH = [
    "Section 27. Penalties for late delivery of the goods",
    "If the supplier fails to deliver the goods on the agreed date, it shall",
    "pay the buyer a penalty of one tenth of one percent of the price of the",
    "goods not delivered for each day of delay, up to ten percent in total.",
    "Payment of the penalty does not release either party from its duties.",
]


def layer_of(spec: PageSpec):
    pdf = pdfium.PdfDocument(build_pdf([spec]))
    page = pdf[0]
    try:
        return read_layer(page)
    finally:
        page.close()
        pdf.close()


def test_born_digital_lines_come_with_boxes_where_the_page_shows_them():
    reading = layer_of(PageSpec(ENGLISH + RUSSIAN))
    assert [line.text for line in reading.lines] == ENGLISH + RUSSIAN
    scale = PDF_DPI / 72
    _, baseline = line_origin(0)
    first = reading.lines[0].box
    assert abs(first[0] - MARGIN * scale) < 3  # left edge where the line starts
    assert first[1] < (842 - baseline) * scale < first[3]  # the baseline runs through the box
    assert all(a.box[1] < b.box[1] for a, b in zip(reading.lines, reading.lines[1:], strict=False))
    rendered = load_document(build_pdf([PageSpec(ENGLISH)]), "a.pdf").page(0).size
    assert all(abs(a - b) <= 1 for a, b in zip(reading.size_px, rendered, strict=True))  # PDFium rounds up
    assert reading.image_share == 0 and not reading.is_scan


@pytest.mark.parametrize("lines", [ENGLISH, RUSSIAN], ids=["english", "russian"])
def test_a_born_digital_layer_is_trusted(lines):
    verdict = judge_text(layer_of(PageSpec(lines)))
    assert verdict.trusted, verdict.reason()
    assert verdict.signals.word_share > 0.7 and verdict.signals.expected_letter_share == 1.0


def test_a_mojibake_layer_without_tounicode_is_rejected_for_its_letters():
    reading = layer_of(PageSpec(RUSSIAN, PageKind.SCAN, Layer.MOJIBAKE))
    assert reading.lines[0].text == mojibake(RUSSIAN[0]) and reading.lines[0].text.startswith("Ðàçäåë")
    assert reading.is_scan
    verdict = judge_text(reading)
    assert verdict.problem is LayerProblem.FOREIGN_LETTERS
    assert verdict.signals.expected_letter_share < 0.2
    assert "letters outside the expected scripts" in verdict.reason()


@pytest.mark.parametrize("lines", [ENGLISH * 3, RUSSIAN * 3], ids=["english", "russian"])
def test_a_poor_invisible_ocr_layer_under_a_scan_is_rejected(lines):
    verdict = judge_text(layer_of(PageSpec(lines, PageKind.SCAN, Layer.GARBLED)))
    assert verdict.problem is LayerProblem.NOT_WORDS, verdict.reason()
    assert verdict.signals.word_share < 0.2


def test_a_layer_covering_part_of_a_scan_is_rejected_by_its_ink_coverage():
    spec = PageSpec((ENGLISH + RUSSIAN) * 3, PageKind.SCAN, Layer.PARTIAL)
    data = build_pdf([spec])
    reading = layer_of(spec)
    verdict = judge_text(reading)
    assert verdict.trusted  # the words it has are real ...
    image = load_document(data, "partial.pdf").page(0)
    checked = judge_scan(verdict, image, reading.lines, sampler=None)
    assert checked.problem is LayerProblem.PARTIAL  # ... but most of the page's ink is outside its lines
    assert checked.signals.ink_coverage is not None and checked.signals.ink_coverage < 0.4


def test_a_good_layer_under_a_scan_passes_the_ink_check():
    spec = PageSpec((ENGLISH + RUSSIAN) * 2, PageKind.SCAN, Layer.GOOD)
    reading = layer_of(spec)
    image = load_document(build_pdf([spec]), "good.pdf").page(0)
    checked = judge_scan(judge_text(reading), image, reading.lines, sampler=None)
    assert checked.trusted, checked.reason()
    assert checked.signals.ink_coverage is not None and checked.signals.ink_coverage > 0.9


def test_a_scan_without_a_layer_has_no_text():
    verdict = judge_text(layer_of(PageSpec(ENGLISH, PageKind.SCAN, Layer.NONE)))
    assert verdict.problem is LayerProblem.NO_TEXT


def test_the_verdict_round_trips_through_json():
    from chatvlmllm.documents.layer_check import LayerVerdict

    verdict = judge_text(layer_of(PageSpec(RUSSIAN, PageKind.SCAN, Layer.MOJIBAKE)))
    assert LayerVerdict.from_dict(verdict.to_dict()) == LayerVerdict(
        verdict.problem, type(verdict.signals)(**verdict.signals.to_dict())
    )
