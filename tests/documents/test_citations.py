"""Citations: the offline extractive answer cites pages with text and boxes; a model's citations are checked
(the page must have been sent, the quote must be on it) and an unverifiable one is marked, not trusted."""

from __future__ import annotations

from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.citations import (
    CitationStatus,
    check_citations,
    extractive_answer,
    parse_citations,
)
from chatvlmllm.documents.index import DocumentIndex, ReadState
from chatvlmllm.documents.loading import load_document
from chatvlmllm.documents.reading import ReadingJob
from chatvlmllm.documents.text_layer import TextLine
from tests.documents.test_text_layer import ENGLISH, RUSSIAN


def read(tmp_path, pages, name="contract.pdf"):
    document = load_document(build_pdf(pages), name)
    index = DocumentIndex(tmp_path / "db.sqlite3")
    ReadingJob(document, index).run()
    return document, index


def test_the_extractive_answer_ranks_passages_with_their_pages_and_boxes(tmp_path):
    pages = filler_pages(12, seed=1)
    pages[8] = PageSpec(RUSSIAN)
    document, index = read(tmp_path, pages)
    result = extractive_answer("Какой размер пени за просрочку поставки?", index, [document.sha256])
    assert result.complete and result.citations[0].page == 9
    top = result.citations[0].to_dict()
    assert top["page"] == 9 and top["status"] == "verified" and top["document_name"] == "contract.pdf"
    assert len(top["box"]) == 4 and top["box"][2] > top["box"][0] and top["text"] in result.text
    assert "Offline answer (extractive)" in result.text and "[p. 9]" in result.text
    assert "Still reading" not in result.text


def test_an_answer_from_a_partly_read_document_says_so(tmp_path):
    pages = [PageSpec(ENGLISH), *filler_pages(3, seed=2)]
    document = load_document(build_pdf(pages), "part.pdf")
    index = DocumentIndex(tmp_path / "db.sqlite3")
    index.begin_read(document.sha256, document.name, 40)  # as a job that stored 4 of 40 pages
    ReadingJob(document, index).run()
    index.begin_read(document.sha256, document.name, 40)
    index.set_state(document.sha256, ReadState.RUNNING)
    result = extractive_answer("penalty for late delivery", index, [document.sha256])
    assert not result.complete and result.citations[0].page == 1
    assert "Still reading: this answer comes from the pages read so far (4 of 40 pages of part.pdf)" in result.text


def test_no_match_is_said_plainly(tmp_path):
    document, index = read(tmp_path, filler_pages(2, seed=4))
    result = extractive_answer("photosynthesis chlorophyll", index, [document.sha256])
    assert result.citations == [] and "No passage" in result.text


def test_citations_are_parsed_from_markers_with_or_without_a_quote():
    answer = (
        'The penalty is "one tenth of one percent" [p. 27]. Payment does not release the parties [p. 28]. '
        "Пеня составляет 0,1 % (стр. 3)"
    )
    claims = parse_citations(answer)
    assert [(c.page, c.quoted) for c in claims] == [(27, True), (28, False), (3, False)]
    assert claims[0].text == "one tenth of one percent"
    assert claims[1].text == "Payment does not release the parties"


def test_the_checker_verifies_quotes_and_marks_what_it_cannot():
    page_27 = [TextLine(text, (10.0, 30.0 * i, 500.0, 30.0 * i + 20)) for i, text in enumerate(ENGLISH)]
    lines = {27: page_27, 28: None}
    claims = parse_citations(
        'It is "one tenth of one percent of the price" [p. 27]. '
        'The supplier may cancel "at any time without notice" [p. 27]. '
        "Something [p. 28]. Something else [p. 5]."
    )
    checked = check_citations(claims, sent_pages={27, 28}, page_lines=lambda page: lines.get(page))
    assert [c.status for c in checked] == [
        CitationStatus.VERIFIED,
        CitationStatus.NOT_ON_PAGE,
        CitationStatus.NO_TEXT,
        CitationStatus.PAGE_NOT_SENT,
    ]
    verified = checked[0]
    assert verified.boxes == [page_27[2].box] and verified.similarity == 100.0
    assert checked[1].boxes == [] and not checked[1].verified and checked[1].to_dict()["verified"] is False
    # OCR slips in a quote still match (fuzzy), across a line break too.
    (slipped,) = check_citations(
        parse_citations('"pay the buyer a penaIty of one tenth of one percent of the price of the goods" [p. 27]'),
        {27},
        lambda page: page_27,
    )
    assert slipped.verified and slipped.boxes == [page_27[2].box, page_27[3].box]


def test_a_citation_highlights_its_lines_on_the_page_image(tmp_path):
    from chatvlmllm.documents.search import highlight

    document, index = read(tmp_path, [*filler_pages(2, seed=6), PageSpec(ENGLISH)])
    (citation, *_) = extractive_answer("penalty late delivery", index, [document.sha256]).citations
    assert citation.page == 3
    page = document.page(2)
    marked = highlight(page, citation.matches(), page=citation.page)
    x0, y0, _, y1 = (round(edge) for edge in citation.boxes[0])
    margin = (x0 - 2, (y0 + y1) // 2)  # white paper just left of the line, inside the highlight's padding
    assert page.getpixel(margin) == (255, 255, 255)
    red, _, blue = marked.getpixel(margin)
    assert red > 200 and blue < 220  # the highlight's yellow or orange
    assert marked.getpixel((5, 5)) == page.getpixel((5, 5))  # the rest of the page untouched
