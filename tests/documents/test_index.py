"""The per-document index: pages stored with their source, FTS5 passages (lines and blocks) with pages and boxes,
and retrieval in Russian and English through stemming (a question's word forms differ from the page's)."""

from __future__ import annotations

import sqlite3

import pytest

from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.index import DocumentIndex, PageSource, PassageKind, ReadState, blocks
from chatvlmllm.documents.lexicon import query_terms, terms
from chatvlmllm.documents.loading import load_document
from chatvlmllm.documents.reading import ReadingJob
from tests.documents.test_text_layer import ENGLISH, RUSSIAN


@pytest.fixture
def contract(tmp_path):
    """A 30-page born-digital document: filler, the English clause on page 12, the Russian one on page 23."""
    pages = filler_pages(30, seed=3)
    pages[11] = PageSpec(ENGLISH)
    pages[22] = PageSpec(RUSSIAN)
    document = load_document(build_pdf(pages), "contract.pdf")
    index = DocumentIndex(tmp_path / "chats.sqlite3")
    ReadingJob(document, index).run()
    return document, index


def test_the_migration_creates_the_tables_and_an_fts5_index(tmp_path):
    index = DocumentIndex(tmp_path / "chats.sqlite3")
    assert index.status("nothing") is None  # the first call migrates
    db = sqlite3.connect(tmp_path / "chats.sqlite3")
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"document_reads", "document_pages", "passages"} <= tables
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'passages'").fetchone()
    assert "fts5" in sql and "remove_diacritics 2" in sql
    db.close()


def test_stemming_matches_word_forms_in_both_languages():
    assert set(query_terms("Какие штрафы за просрочку?")) <= set(terms(RUSSIAN[0] + " " + RUSSIAN[1] + " штрафов"))
    assert terms("penalties delayed")[0] == terms("penalty")[0]
    assert terms("ёлка") == terms("елка")  # ё is е
    assert query_terms("What is the penalty for late delivery?") == terms("penalty late delivery")


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("What penalty does the supplier pay for delayed deliveries?", 12),
        ("Какую неустойку платит поставщик за просроченную поставку?", 23),
        ("освобождает ли уплата неустойки от обязательств", 23),
    ],
)
def test_retrieval_finds_the_page_in_russian_and_english(contract, question, page):
    document, index = contract
    passages = index.search(question, [document.sha256], limit=5)
    assert passages and passages[0].page == page
    top = passages[0]
    assert top.document == document.sha256 and top.boxes and top.score > 0
    stored = index.page_text(document.sha256, page)
    assert stored is not None and stored.source is PageSource.TEXT_LAYER
    assert all(box in [line.box for line in stored.lines] for box in top.boxes)  # boxes of the page's own lines


def test_a_line_inside_a_chosen_block_is_not_repeated(contract):
    document, index = contract
    passages = index.search("penalty supplier delivery goods", [document.sha256], limit=10)
    for a in passages:
        for b in passages:
            if a is not b and a.page == b.page:
                assert not set(a.boxes) & set(b.boxes)
    # A question whose words run across two lines is best answered by their block.
    spread = index.search("one tenth of one percent of the price for each day of delay", [document.sha256])
    assert spread[0].kind is PassageKind.BLOCK and spread[0].page == 12 and len(spread[0].boxes) > 1


def test_search_is_limited_to_the_documents_asked_about(contract, tmp_path):
    document, index = contract
    other = load_document(build_pdf([PageSpec(ENGLISH), PageSpec(["nothing here at all, just filler words"])]), "b.pdf")
    ReadingJob(other, index).run()
    assert {p.document for p in index.search("penalty", [other.sha256])} == {other.sha256}
    both = index.search("penalty late delivery", [document.sha256, other.sha256], limit=10)
    assert {p.document for p in both} == {document.sha256, other.sha256}
    assert index.search("the what is", [document.sha256]) == []  # only stop words: nothing to match


def test_status_counts_sources_and_forget_drops_everything(contract):
    document, index = contract
    status = index.status(document.sha256)
    assert status is not None and status.complete and status.state is ReadState.DONE
    assert status.sources == {"text layer": 30}
    index.forget(document.sha256)
    assert index.status(document.sha256) is None and index.search("penalty", [document.sha256]) == []


def test_blocks_split_at_gaps_and_columns():
    from chatvlmllm.documents.text_layer import TextLine

    lines = [
        TextLine("a", (10, 10, 200, 30)),
        TextLine("b", (10, 35, 200, 55)),
        TextLine("c", (10, 120, 200, 140)),  # after a gap
        TextLine("d", (400, 145, 600, 165)),  # another column
    ]
    assert [[line.text for line in group] for group in blocks(lines)] == [["a", "b"], ["c"], ["d"]]
