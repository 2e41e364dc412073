"""The chat page a person can trust, in a real browser (headless Chromium against `streamlit run app.py`).

The machine has no vision-language model configured, so the offline OCR engine (bundled in its
wheel) answers, as on a fresh CPU-only install. OCR reads real text that the test drew, so every
check compares what is shown with what is on the page: page labels, the text of each page, which
chat holds which document. Screenshots go to artifacts/browser/.

Every step waits for the state it leads to (the new chat on the page, the upload saved, the
answer settled in the database and shown), with generous timeouts and no fixed sleeps, so the
tests pass on a busy machine (`../shared/tools/under-load`). How fast Stop is, is measured by
benchmarks/stop_latency.py, not asserted here.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from chatvlmllm.chat.conversation import Conversation, Turn
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.browser.conftest import (
    ASSISTANT,
    MESSAGES,
    USER,
    WAIT_S,
    ask,
    ask_with_button,
    chat_id,
    click_button,
    click_until,
    new_chat,
    screenshot,
    select_option,
    start_upload,
    stored_turns,
    streamlit_server,
    upload,
    wait_answer,
    wait_idle,
    wait_until,
    wait_uploaded,
)
from tests.helpers import image_bytes, pdf_of, text_image

pytestmark = pytest.mark.browser

EXTRACT = "quick_extract_text"
PAGE_PICKER = "Page ("


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_chat")
    env = {"CHATVLMLLM_DEFAULT_MODEL": "rapidocr"}
    with streamlit_server(root, env) as info:
        yield info


def rows(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def write_png(path: Path, lines: list[str], size=(640, 300)) -> Path:
    path.write_bytes(image_bytes(text_image(lines, size=size)))
    return path


def last_answer(page):
    return page.locator(ASSISTANT).last


def page_sections(answer) -> dict[str, str]:
    """{"Page 1": text, ...}: the labelled blocks of a transcription, as the DOM shows them.

    Empty while the page is being redrawn (a rerun replaces the blocks): callers poll.
    """
    try:
        sections = {}
        blocks = answer.locator('[class*="st-key-turn"][class*="_page_"]')
        for index in range(blocks.count()):
            block = blocks.nth(index)
            label = block.locator('[data-testid="stMarkdownContainer"] strong').first.inner_text(timeout=2_000)
            sections[label] = block.locator('[data-testid="stCode"] code').first.inner_text(timeout=2_000)
        return sections
    except PlaywrightError:
        return {}


def test_a_setting_change_keeps_the_chat_while_chats_share_a_title(app_pages, server, tmp_path):
    receipt = write_png(tmp_path / "receipt.png", ["CAFE 21", "TOTAL 7.40"])
    ids = []
    page = app_pages()
    for _ in range(3):  # three chats, all "receipt.png — Extract all text"
        new_chat(page)
        ids.append(upload(page, receipt))
        ask_with_button(page, EXTRACT)
        wait_answer(page, server["db"], 1, WAIT_S)
    assert len(set(ids)) == 3
    titles = {title for (title,) in rows(server["db"], "SELECT title FROM sessions WHERE id IN (?, ?, ?)", *ids)}
    assert titles == {"receipt.png — Extract all text"}

    select_option(page, "Document language", "Russian")
    assert chat_id(page) == ids[-1]
    guard = page.locator(".st-key-repetition_guard input[type=checkbox]")
    click_until(page, page.locator('[data-testid="stExpander"] summary', has_text="Generation settings"),
                lambda: guard.count() > 0 and guard.is_visible(), "the generation settings did not open")  # fmt: skip
    wait_idle(page)  # the expander is open and no rerun redraws it under the click
    was_on = guard.is_checked()
    click_until(page, page.locator(".st-key-repetition_guard label"), lambda: guard.is_checked() != was_on,
                "the repetition guard did not change")  # fmt: skip
    wait_idle(page)
    assert chat_id(page) == ids[-1]
    ask_with_button(page, EXTRACT)
    wait_answer(page, server["db"], 2, WAIT_S)
    assert chat_id(page) == ids[-1]
    assert [len(stored_turns(server["db"], i)) for i in ids] == [2, 2, 4]  # the answer went to this chat only
    assert page.locator(MESSAGES).count() == 4
    screenshot(page, "same-titles-setting-change.png")


def test_a_transcription_is_shown_verbatim(app_pages, server, tmp_path):
    text = "RECEIPT No 7\nCoffee  $50.86\nTable *reserved* for 2\n\nTotal   $650\n<b>not bold</b>"
    conversation = Conversation(
        title="Receipt transcription",
        turns=[
            Turn("user", QUICK_PROMPTS["Extract all text"], document="receipt.png", pages=[1]),
            Turn("assistant", text, model="rapidocr", extras={"lines": [], "qa_supported": False}),
        ],
    )
    transcript = tmp_path / "receipt.json"
    transcript.write_text(conversation.to_json())
    page = app_pages()
    page.locator('.st-key-transcript_upload input[type="file"]').set_input_files(str(transcript))
    code = last_answer(page).locator('[data-testid="stCode"] code')
    wait_until(lambda: chat_id(page) is not None and code.count() == 1, "the resumed chat is not shown")
    wait_idle(page)

    assert code.inner_text() == text  # every character and line break as read: `$`, `*` and `<b>` untouched
    assert page.locator(".katex, .katex-error").count() == 0  # no LaTeX made of the dollar amounts
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400  # nothing runs past the page
    assert last_answer(page).locator('[data-testid="stDownloadButton"]').count() == 1  # .txt download
    screenshot(page, "verbatim-transcription.png")


def test_all_pages_after_page_three_reads_every_page_with_its_number(app_pages, server, tmp_path):
    words = {1: "ALPHA", 2: "BRAVO", 3: "CHARLIE"}
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(pdf_of([text_image([f"{word} PAGE", f"NUMBER {n}"], size=(640, 300)) for n, word in words.items()]))
    page = app_pages()
    new_chat(page)
    upload(page, pdf)
    select_option(page, PAGE_PICKER, "Page 3")
    ask_with_button(page, EXTRACT)
    wait_answer(page, server["db"], 1, WAIT_S)
    wait_until(lambda: list(page_sections(last_answer(page))) == ["Page 3"], "no single Page 3 section")

    select_option(page, PAGE_PICKER, "All pages")
    ask_with_button(page, EXTRACT)
    stored = wait_answer(page, server["db"], 2, WAIT_S)
    assert [t["role"] for t in stored] == ["user", "assistant", "user", "assistant"]
    expected = ["Page 1", "Page 2", "Page 3"]
    wait_until(lambda: list(page_sections(last_answer(page))) == expected, "not three labelled page sections")
    sections = page_sections(last_answer(page))
    for number, word in words.items():
        assert word in sections[f"Page {number}"]  # the label is the page the text came from
    assert "pages 1–3" in page.locator(USER).last.inner_text()
    assert last_answer(page).locator('[data-testid="stAlert"]').count() == 0  # no page reported missing
    screenshot(page, "all-pages.png")


def test_stop_during_multi_page_ocr_keeps_what_was_read_and_the_next_question_answers(app_pages, server, tmp_path):
    # Enough pages that the answer is still reading when the Stop click lands, however busy the machine
    # (a busier machine reads each page more slowly, which only leaves more pages unread).
    pages = 30
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(
        pdf_of([text_image([f"PAGE {n} OF {pages}", "Item 1 costs 5.00", "Item 2 costs 7.50"]) for n in range(1, 31)])
    )
    page = app_pages()
    new_chat(page)
    session_id = upload(page, pdf)
    select_option(page, PAGE_PICKER, "All pages")
    ask_with_button(page, EXTRACT)
    # A page is done: the answer is under way, with visible progress. The document's background reading
    # (ui.reading_status) OCRs the same pages meanwhile, so the answer may skip ahead over pages it cached.
    progress = page.locator('[data-testid="stProgress"]', has_text=re.compile(rf"Reading page ([2-9]|\d\d) of {pages}"))
    progress.first.wait_for(timeout=WAIT_S * 1000)

    click_button(page, "stop_generation")
    stored = wait_answer(page, server["db"], 1, WAIT_S)  # Stop saved the answer: the page is free again
    assert chat_id(page) == session_id
    answer = stored[-1]
    assert answer["role"] == "assistant" and answer["metrics"]["stopped_by"] == "cancelled"
    assert 0 < answer["text"].count("--- page") < pages  # it stopped between pages, keeping what it read
    assert "Stopped by you" in last_answer(page).inner_text()
    assert "Stopped before page" in last_answer(page).inner_text()  # the pages not read are named
    screenshot(page, "stopped.png")

    select_option(page, PAGE_PICKER, "Page 1")
    ask(page, "Extract the text")
    stored = wait_answer(page, server["db"], 2, WAIT_S)
    assert [t["role"] for t in stored] == ["user", "assistant", "user", "assistant"]  # strict order
    assert stored[-1]["metrics"]["stopped_by"] == "eos" and f"PAGE 1 OF {pages}" in stored[-1]["text"]

    def counts_joined() -> bool:  # Stop saved the text; the engine's own figures join that turn when it ends
        stopped = stored_turns(server["db"], session_id)[1]["metrics"]
        return "total_s" in stopped and stopped["stopped_by"] == "cancelled"

    wait_until(counts_joined, "the engine's figures never joined the stopped answer", WAIT_S)


def test_delete_asks_for_confirmation(app_pages, server, tmp_path):
    page = app_pages()
    session_id = upload(page, write_png(tmp_path / "delete-me.png", ["DELETE ME"]))
    assert rows(server["db"], "SELECT COUNT(*) FROM sessions WHERE id = ?", session_id) == [(1,)]

    question = page.get_by_text("This cannot be undone.")
    click_until(page, page.locator(".st-key-delete_chat button").first, question.is_visible, "no confirmation asked")
    assert rows(server["db"], "SELECT COUNT(*) FROM sessions WHERE id = ?", session_id) == [(1,)]  # not yet
    screenshot(page, "delete-confirm.png")
    click_until(page, page.locator(".st-key-delete_chat_confirm button:visible").first,
                lambda: chat_id(page) != session_id, "the deleted chat stayed open")  # fmt: skip
    wait_idle(page)
    assert rows(server["db"], "SELECT COUNT(*) FROM sessions WHERE id = ?", session_id) == [(0,)]
    wait_until(lambda: page.locator(MESSAGES).count() == 0, "a deleted chat's messages are still shown")


def test_a_new_tab_starts_a_new_chat_and_offers_the_last_one(app_pages, server, tmp_path):
    first = app_pages()
    mine = upload(first, write_png(tmp_path / "mine.png", ["MINE ONLY"]))
    ask_with_button(first, EXTRACT)
    wait_answer(first, server["db"], 1, WAIT_S)

    second = app_pages()  # no ?chat=: never opens another session's chat by itself
    assert chat_id(second) is None and second.locator(MESSAGES).count() == 0
    offer = second.locator(".st-key-continue_last_chat button")
    assert "mine.png" in offer.inner_text()
    click_until(second, offer, lambda: chat_id(second) == mine, "continue did not open the last chat")
    wait_until(lambda: second.locator(MESSAGES).count() == 2, "the last chat's two messages are not shown")
    wait_idle(second)
    # The text block may still be drawing its content on a busy machine: wait for it.
    wait_until(lambda: "MINE ONLY" in last_answer(second).inner_text(), "the last chat's answer text is not shown")


def test_eight_concurrent_sessions_with_colliding_titles_stay_apart(app_pages, server, tmp_path):
    """Each of 8 browser sessions uploads its own receipt.png (same name, same question, so the same
    title) and asks at the same time; each chat holds its own document and its own answers."""
    codes = [f"CODE {n}{n}{n}" for n in range(1, 9)]
    pages = [app_pages(width=1000, height=800) for _ in codes]
    ids = []
    for index, (page, code) in enumerate(zip(pages, codes, strict=True)):  # all uploads in flight together
        folder = tmp_path / f"s{index}"
        folder.mkdir()
        ids.append(start_upload(page, write_png(folder / "receipt.png", [code, "TOTAL 1.00"], size=(480, 160))))
    for page, session_id in zip(pages, ids, strict=True):
        wait_uploaded(page, session_id, "receipt.png", WAIT_S)
    for page in pages:  # all questions in flight together
        ask_with_button(page, EXTRACT)
    for page in pages:
        wait_answer(page, server["db"], 1, WAIT_S)

    correct = 0
    for page, code, session_id in zip(pages, codes, ids, strict=True):
        stored = stored_turns(server["db"], session_id)
        documents = rows(server["db"], "SELECT data FROM documents WHERE session_id = ?", session_id)
        others = [c for c in codes if c != code]
        own_answer = code in stored[-1]["text"] and not any(other in stored[-1]["text"] for other in others)
        own_page = code in last_answer(page).inner_text()
        if chat_id(page) == session_id and len(stored) == 2 and len(documents) == 1 and own_answer and own_page:
            correct += 1
    assert len(set(ids)) == 8
    assert correct == 8, f"{correct}/8 sessions kept to their own chat"
    screenshot(pages[-1], "concurrent-session-8.png")
