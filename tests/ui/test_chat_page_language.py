"""The Chat page in the interface language (issue 21), through AppTest on a machine without a vision-language
model (the offline OCR engine answers): empty, a receipt uploaded, after an answer (a transcription through
the quick prompt and a free question), the chat list, a 3-page PDF answered as a whole with its citation chip
and its reading status, and a chosen model that cannot run here (the banner, the fallback). Every text the
page shows is walked (tests/helpers.py: shown_texts, english_texts): in Russian no English is left but names,
in English there is no Cyrillic. The document's own words and the user's question are not the interface's:
they are taken out of the texts before the check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.index import ReadState
from chatvlmllm.documents.reading import job_of
from tests.helpers import (
    CONTRACT_CLAUSE,
    CONTRACT_QUESTION,
    ShownText,
    english_texts,
    image_bytes,
    shown_texts,
    text_image,
)

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
QUOTED = re.compile(r"“[^”]*”")  # a citation's quoted words (ui.citations): the document's, never the interface's
RECEIPT = ["CAFE 21", "TOTAL 7.40"]
FREE_QUESTION = {"ru-RU": "Сколько всего к оплате?", "en-US": "How much is the total?"}
CLAUSE_PAGE = 2


def open_chat(locale: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.context = {"locale": locale}
    at.run()
    assert not at.exception
    return at


def session(at: AppTest):
    return at.session_state["chat_session"]


def page_texts(at: AppTest, document: list[str] = ()) -> list[ShownText]:
    """What the page shows (main, sidebar, the chat input's placeholder), without the document's own words
    and the questions asked (each fragment taken out of the texts, longest first)."""
    texts = shown_texts(at.main) + shown_texts(at.sidebar)
    texts.append(ShownText("chat_input", "question", (), at.chat_input(key="question").placeholder))
    asked = [turn.text for turn in session(at).conversation.turns if turn.role == "user"]
    fragments = sorted({f for f in [*document, *asked] if f.strip()}, key=len, reverse=True)
    cleaned = []
    for shown in texts:
        text = QUOTED.sub(" ", shown.text)
        for fragment in fragments:
            text = text.replace(fragment, " ")
        cleaned.append(ShownText(shown.kind, shown.key, shown.within, text))
    return cleaned


def read_lines(at: AppTest) -> list[str]:
    """The text the offline engine read in this chat's answers (its lines, as stored with each answer), and
    the attempts' reasons in a library's own words (stored without a message: shown as stored)."""
    lines = []
    for turn in session(at).conversation.turns:
        lines += [str(line.get("text", "")) for line in turn.extras.get("lines") or []]
        lines += [citation.text for citation in turn.citations]
        lines += [str(attempt.get("reason") or "") for attempt in turn.attempts if "reason_message" not in attempt]
    return lines


def assert_in_language(texts: list[ShownText], locale: str) -> None:
    if locale == "ru-RU":
        assert english_texts(texts) == []
        assert sum(bool(CYRILLIC.search(shown.text)) for shown in texts) >= 10  # the walk sees a Russian page
    else:
        # The language switch lists each language in its own name: "Русский" is the one Cyrillic word.
        assert [s for s in texts if CYRILLIC.search(s.text) and s.key != "ui_language_switch"] == []
        assert english_texts(texts) != []  # the checker is not blind to English


def receipt_png() -> bytes:
    return image_bytes(text_image(RECEIPT))


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])
def test_the_chat_page_empty_with_a_receipt_and_after_answers(offline_app, locale):
    at = open_chat(locale)
    assert_in_language(page_texts(at), locale)  # empty: the upload area, the empty state, the sidebar

    at.main.file_uploader[0].set_value(("receipt.png", receipt_png(), "image/png")).run()
    assert not at.exception and session(at).document is not None
    assert_in_language(page_texts(at, RECEIPT), locale)

    at.button(key="quick_extract_text").click().run()  # the quick prompt, in the interface language
    assert not at.exception
    extracted = session(at).conversation.turns[-1]
    assert extracted.role == "assistant" and extracted.model == "ocr_auto" and "TOTAL" in extracted.text
    assert_in_language(page_texts(at, [*RECEIPT, *read_lines(at)]), locale)

    at.chat_input(key="question").set_value(FREE_QUESTION[locale]).run()  # a free question: the canned answer
    assert not at.exception
    canned = session(at).conversation.turns[-1]
    assert canned.role == "assistant" and canned.model == "ocr_auto"
    says = "офлайн-движок OCR" if locale == "ru-RU" else "is an offline OCR engine"
    assert says in canned.text  # written in the language of the session that asked
    assert_in_language(page_texts(at, [*RECEIPT, *read_lines(at)]), locale)
    at.sidebar.toggle(key="show_details").set_value(True).run()  # the answers' captions with their figures
    assert not at.exception
    assert_in_language(page_texts(at, [*RECEIPT, *read_lines(at)]), locale)
    chat_list = [shown.text for shown in shown_texts(at.sidebar) if "chat_list" in shown.within]
    assert any("receipt.png" in text for text in chat_list)  # the chat list, walked above with the sidebar
    if locale == "ru-RU":
        assert at.button(key="quick_extract_text").label == "Извлечь текст"
        assert at.chat_input(key="question").placeholder.startswith("Попросите извлечь текст")
        captions = " ".join(c.value for c in at.chat_message[-1].caption)
        assert "ocr_auto · " in captions and "собственное время движка" in captions  # the details, in Russian


def contract_3_pages() -> bytes:
    specs = filler_pages(3, seed=11, lines_per_page=20)
    specs[CLAUSE_PAGE - 1] = PageSpec(CONTRACT_CLAUSE + specs[CLAUSE_PAGE - 1].lines)
    return build_pdf(specs)


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])
def test_a_three_page_pdf_answered_as_a_whole(offline_app, locale):
    at = open_chat(locale)
    at.main.file_uploader[0].set_value(("contract.pdf", contract_3_pages(), "application/pdf")).run()
    chat = session(at)
    job = job_of(chat.document.sha256, chat.index)
    assert job is not None and job.wait(300).state is ReadState.DONE
    at.run()
    assert not at.exception
    picker = at.main.selectbox(key=f"page_picker_{chat.id}_{chat.document.sha256[:12]}")
    assert_in_language(page_texts(at), locale)  # the page picker, the reading status, the preview

    at.chat_input(key="question").set_value(CONTRACT_QUESTION).run()
    assert not at.exception
    answer = session(at).conversation.turns[-1]
    assert answer.citations and answer.citations[0].page == CLAUSE_PAGE
    chip = at.main.button(key="turn1_cite_0")
    assert_in_language(page_texts(at, read_lines(at)), locale)
    chip.click().run()  # the cited page opens in the document panel
    assert not at.exception
    assert_in_language(page_texts(at, read_lines(at)), locale)
    if locale == "ru-RU":
        assert picker.label == "Страница (в этом PDF 3 страницы)"
        assert picker.options == ["Весь документ", "Страница 1", "Страница 2", "Страница 3", "Все страницы"]
        assert answer.text.startswith("Офлайн-ответ (выдержки)") and f"[стр. {CLAUSE_PAGE}]" in answer.text
        assert chip.label == f"стр. {CLAUSE_PAGE}"
        caption = at.main.image[0].proto.imgs[0].caption
        assert caption == f"contract.pdf — страница {CLAUSE_PAGE}: процитированные строки выделены"


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])
def test_a_chosen_model_that_cannot_run_here_and_its_fallback(offline_app, locale):
    """qwen_vl_2b chosen offline (no weights): the banner says who answers instead; the answer says so too."""
    at = open_chat(locale)
    at.sidebar.selectbox(key="model").set_value("qwen_vl_2b").run()
    assert not at.exception
    assert_in_language(page_texts(at), locale)  # the banner and its way out

    at.main.file_uploader[0].set_value(("receipt.png", receipt_png(), "image/png")).run()
    at.chat_input(key="question").set_value(FREE_QUESTION[locale]).run()
    assert not at.exception
    answer = session(at).conversation.turns[-1]
    assert answer.model == "ocr_auto" and answer.attempts[0]["model"] == "qwen_vl_2b"
    assert_in_language(page_texts(at, [*RECEIPT, *read_lines(at)]), locale)  # the fallback note and expander
    if locale == "ru-RU":
        captions = [caption.value for caption in at.chat_message[-1].caption]
        assert any(value.endswith("qwen_vl_2b: не может работать здесь; ответила ocr_auto.") for value in captions)
        assert at.chat_message[-1].expander[0].label == "Запасные модели: 2 попытки"
        # The skipped model's reason (weights not here), stored in English and as a message, reads in Russian.
        assert "reason_message" in answer.attempts[0]
        shown = " ".join(markdown.value for markdown in at.chat_message[-1].expander[0].markdown)
        assert "qwen_vl_2b" in shown and "HF_HUB_OFFLINE" in shown and "Weights for" not in shown
