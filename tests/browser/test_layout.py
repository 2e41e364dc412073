"""Where things are on the chat page, in headless Chromium at 1400×900 and at 420×800 (issue 19, items 1-3, 9):
the page stays in view beside a growing chat, nothing jumps out of sight, the input has the focus, and which
engine read a page is said beside the text, never in it. The offline OCR engine answers (no model weights).

Positions are read from the browser's own layout (getBoundingClientRect), after waiting for the states that
lead to them. Viewport screenshots go to artifacts/browser/layout-*.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.browser.conftest import (
    ARTIFACTS,
    ASSISTANT,
    CHAT_INPUT,
    FOCUSED,
    USER,
    ask,
    ask_with_button,
    chat_id,
    click_until,
    download,
    new_chat,
    select_option,
    stored_turns,
    streamlit_server,
    upload,
    wait_answer,
    wait_idle,
    wait_until,
)
from tests.helpers import image_bytes, pdf_of, text_image

pytestmark = pytest.mark.browser

DESKTOP = (1400, 900)
PHONE = (420, 800)
HEADER_PX = 60  # Streamlit's header bar: what sits under it is hidden
# A tall receipt-shaped page: taller than the window, as a real full-page scan is.
RECEIPT_LINES = ["SHOP 42 LTD", "Date 25/12/2018", *[f"Item {n}   1 x {n}.50   {n}.50" for n in range(1, 26)]]
RECEIPT_LINES += ["TOTAL 338.50", "THANK YOU"]
# Disables the input for 30 ms, as Streamlit does while a quick answer runs; says what had the focus then.
BLINK_DISABLED = """() => new Promise((done) => {
  const input = document.querySelector('[data-testid="stChatInputTextArea"]');
  input.disabled = true;
  setTimeout(() => { input.disabled = false; done(document.activeElement.tagName.toLowerCase()); }, 30);
})"""
# The main area's scroller: Streamlit's page scrolls inside it, not the document.
MAIN_SCROLL = "document.querySelector('[data-testid=\"stMain\"]').scrollTop"


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_layout")
    with streamlit_server(root) as info:
        yield info


@pytest.fixture
def receipt(tmp_path) -> Path:
    path = tmp_path / "receipt.png"
    path.write_bytes(image_bytes(text_image(RECEIPT_LINES, size=(620, 1240))))
    return path


def box(page, selector: str) -> dict:
    """The first visible match's box in the viewport: top and bottom (px)."""
    return box_of(page.locator(f"{selector} >> visible=true").first)


def box_of(found) -> dict:
    found.wait_for()
    return found.evaluate("el => { const b = el.getBoundingClientRect(); return {top: b.top, bottom: b.bottom}; }")


def in_view(page, selector: str, covered_below: float = 0) -> bool:
    where = box(page, selector)
    height = page.viewport_size["height"]
    return where["top"] >= HEADER_PX - 1 and where["bottom"] <= height - covered_below + 1


def visible_height(page, selector: str) -> float:
    """How many pixels of the element show in the viewport (below the header)."""
    where = box(page, selector)
    return max(0.0, min(where["bottom"], page.viewport_size["height"]) - max(where["top"], HEADER_PX))


def view_shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))  # the viewport, as the reader sees it


def test_the_page_stays_beside_three_answers_and_nothing_jumps(app_pages, server, receipt):
    page = app_pages(*DESKTOP)
    upload(page, receipt)
    # After an upload: nothing scrolled, the Extract button and its hint in view, the focus in the input.
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after upload")
    assert page.evaluate(MAIN_SCROLL) == 0
    assert in_view(page, ".st-key-quick_extract_text button") and in_view(page, ".st-key-chat_pane")
    assert page.get_by_text("to read it.").is_visible()
    view_shot(page, "layout-desktop-uploaded.png")
    # A quick answer disables and enables the input between two of the page script's looks: the disabled
    # input lost the focus, and takes it back.
    assert page.evaluate(BLINK_DISABLED) == "body"
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after a quick answer")

    ask_with_button(page, "quick_extract_text")
    wait_answer(page, server["db"], 1)
    ask(page, QUICK_PROMPTS["Extract all text"])
    wait_answer(page, server["db"], 2)
    ask(page, QUICK_PROMPTS["Key fields → JSON"])
    wait_answer(page, server["db"], 3)

    # The chat grew in its own pane; the page did not scroll to its end: the document is still beside it.
    assert page.evaluate(MAIN_SCROLL) == 0
    assert visible_height(page, ".st-key-document_preview img") > 400
    assert in_view(page, CHAT_INPUT) and in_view(page, ".st-key-quick_extract_text button")
    pane = page.locator(".st-key-chat_pane")
    assert pane.evaluate("el => el.scrollHeight > el.clientHeight")  # three answers overflow the pane, not the page
    # The view lands on the last question, with its answer under it (the page scrolls its pane after drawing it).
    pane_top = box(page, ".st-key-chat_pane")["top"]

    def question_top() -> float:
        return box_of(page.locator(USER).last)["top"]

    wait_until(lambda: pane_top <= question_top() < 300, lambda: f"last question at {question_top()}, not at the top")
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after an answer")
    view_shot(page, "layout-desktop-three-answers.png")


def test_the_phone_layout_does_not_jump_and_the_page_stays_reachable(app_pages, server, receipt):
    page = app_pages(*PHONE)
    badge = page.get_by_text("Text extraction only", exact=False).first
    badge.wait_for()
    wait_idle(page)
    assert page.evaluate(MAIN_SCROLL) == 0  # the first load does not scroll: the badge is not under the header
    assert in_view(page, "text=Text extraction only")
    view_shot(page, "layout-phone-load.png")

    upload(page, receipt)
    input_height = box(page, '[data-testid="stChatInput"]')
    covered = input_height["bottom"] - input_height["top"]  # the input is held over the screen's bottom
    wait_until(
        lambda: in_view(page, ".st-key-quick_extract_text button", covered),
        "the Extract button is not in view after the upload",
    )
    assert visible_height(page, ".st-key-document_preview img") > 200  # the page, with the button under it
    view_shot(page, "layout-phone-uploaded.png")

    ask_with_button(page, "quick_extract_text")
    wait_answer(page, server["db"], 1)
    ask(page, QUICK_PROMPTS["Extract all text"])
    wait_answer(page, server["db"], 2)
    assert in_view(page, CHAT_INPUT)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]  # nothing wider than the phone
    view_shot(page, "layout-phone-answers.png")
    page.mouse.move(PHONE[0] / 2, PHONE[1] / 3)

    def scrolled_up() -> bool:  # the reader scrolls up with the wheel (the view then stops following the answer)
        page.mouse.wheel(0, -600)
        return visible_height(page, ".st-key-document_preview img") > 200

    wait_until(scrolled_up, "the page cannot be reached by scrolling up")


def test_which_engine_read_the_pages_is_said_beside_the_text(app_pages, server, tmp_path):
    pages = [text_image([f"PAGE {n} OF TWO", f"Invoice line {n}"], size=(640, 300)) for n in (1, 2)]
    pdf = tmp_path / "two-pages.pdf"
    pdf.write_bytes(pdf_of(pages))
    page = app_pages(*DESKTOP)
    upload(page, pdf)
    select_option(page, "Page (", "All pages")
    ask_with_button(page, "quick_extract_text")
    turns = wait_answer(page, server["db"], 1)

    answer = turns[-1]
    read_by = answer["extras"]["read_by"]
    assert read_by.startswith("Read ") and "page" in read_by  # one sentence for both pages
    assert "Read" not in answer["text"] and "RapidOCR" not in answer["text"] and "Tesseract" not in answer["text"]
    shown = page.locator(ASSISTANT).last
    codes = shown.locator('[data-testid="stCode"] code').all_inner_texts()  # what the copy button copies
    assert codes and not any("Read by" in code or "Read page" in code for code in codes)
    beside = shown.locator('[data-testid="stCaptionContainer"]', has_text=read_by)
    assert beside.count() == 1  # said once, in words, beside the text
    saved = download(page, shown.locator('[data-testid="stDownloadButton"] button', has_text=".txt").first)
    text = saved.read_text(encoding="utf-8")
    assert "PAGE" in text.upper() and read_by not in text and "Tesseract" not in text and "RapidOCR" not in text
    view_shot(page, "layout-read-by-caption.png")


def test_switching_chats_lands_on_the_last_question(app_pages, server, tmp_path):
    page = app_pages(*DESKTOP)
    first = tmp_path / "first.png"
    first.write_bytes(image_bytes(text_image(["FIRST CHAT", "TOTAL 1.00"])))
    upload(page, first)
    for number in range(1, 4):
        ask(page, QUICK_PROMPTS["Extract all text"] + f" ({number})")
        wait_answer(page, server["db"], number)
    first_chat = chat_id(page)
    new_chat(page)
    second = tmp_path / "second.png"
    second.write_bytes(image_bytes(text_image(["SECOND CHAT"])))
    upload(page, second)
    assert len(stored_turns(server["db"], first_chat)) == 6

    def opened() -> bool:
        return chat_id(page) == first_chat and page.locator(USER).count() == 3

    click_until(
        page, page.locator(f".st-key-open_chat_{first_chat} button").first, opened, "the first chat did not open"
    )
    wait_idle(page)
    pane_top = box(page, ".st-key-chat_pane")["top"]

    def landed() -> bool:  # the last question at the pane's top (or as high as the pane scrolls), its answer under it
        question = box_of(page.locator(USER).last)["top"]
        at_end = page.locator(".st-key-chat_pane").evaluate(
            "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 2"
        )
        return pane_top <= question and (question <= pane_top + 40 or at_end)

    wait_until(landed, "switching chats did not land on the last question")
    assert page.evaluate(MAIN_SCROLL) == 0
    view_shot(page, "layout-switched-chat.png")


def test_a_model_that_cannot_run_here_says_in_view_who_answers(app_pages, server, receipt):
    page = app_pages(*DESKTOP)
    select_option(page, "Model", "qwen_vl_2b")  # no weights here
    upload(page, receipt)
    quick = page.locator(".st-key-quick_prompts button:visible").all_inner_texts()
    assert quick == ["Extract text", "Table → Markdown", "Key fields → JSON"]  # what ocr_auto can do, no "Summarise"
    assert page.locator(CHAT_INPUT).get_attribute("placeholder").startswith("Ask to extract the text")
    ask(page, "What is the total?")
    answer = wait_answer(page, server["db"], 1)[-1]
    assert answer["model"] == "ocr_auto" and answer["attempts"][0]["outcome"] == "skipped"
    explanation = page.get_by_text("Questions go to", exact=False).first
    top, bottom = box_of(explanation).values()
    assert top >= HEADER_PX - 1 and bottom <= DESKTOP[1]  # the explanation is in view, after the answer too
    said = page.locator(ASSISTANT).last.locator('[data-testid="stCaptionContainer"]', has_text="cannot run here")
    assert "ocr_auto answered" in said.inner_text()
    view_shot(page, "layout-unavailable-model.png")
