"""Answers as a reader sees them in a real browser (headless Chromium against `streamlit run app.py`):
a table is an HTML table, JSON is one formatted code block, and the page's full-screen button does not
cover the "Highlight a line" picker. Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import pytest

from chatvlmllm.chat.conversation import Conversation, Turn
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.browser.conftest import (
    ASSISTANT,
    WAIT_S,
    ask,
    ask_with_button,
    click_until,
    screenshot,
    streamlit_server,
    upload,
    wait_idle,
    wait_until,
)
from tests.helpers import SHARED_EVAL, image_bytes, text_image

pytestmark = pytest.mark.browser

TABLE = "\n".join(
    [
        "| Item | Qty | Price |",
        "|---|---:|---:|",
        "| Coffee | 2 | $4.50 |",
        "| Tea, green | 1 | $3.00 |",
        "| Cake | 3 | $9.75 |",
    ]
)
FIELDS = '```json\n{"total": "RM 9.00", "date": "25/12/2018"}\n```'


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_display")
    with streamlit_server(root) as info:
        yield info


def answers(page):
    return page.locator(ASSISTANT)


def test_a_table_answer_is_a_table_and_json_is_shown_once(page, tmp_path):
    conversation = Conversation(
        title="Receipt table",
        turns=[
            Turn("user", QUICK_PROMPTS["Table → Markdown"], document="receipt.png", pages=[1]),
            Turn("assistant", f"The items:\n\n{TABLE}", model="qwen_vl_2b"),
            Turn("user", QUICK_PROMPTS["Key fields → JSON"], document="receipt.png", pages=[1]),
            Turn("assistant", FIELDS, model="qwen_vl_2b"),
        ],
    )
    transcript = tmp_path / "table.json"
    transcript.write_text(conversation.to_json())
    page.locator('.st-key-transcript_upload input[type="file"]').set_input_files(str(transcript))
    wait_until(lambda: answers(page).count() == 2, "the resumed answers did not show", WAIT_S)
    wait_idle(page)

    table_answer = answers(page).nth(0)
    table = table_answer.locator('[data-testid="stTable"] table')
    assert table.count() == 1  # an HTML table, drawn as rows and columns
    headers = [text.strip() for text in table.locator("thead th").all_inner_texts()]
    assert headers[-3:] == ["Item", "Qty", "Price"]
    assert table.locator("tbody tr").count() == 3 and "Tea, green" in table.inner_text()
    assert "|---" not in table_answer.inner_text()  # no pipe text on the page
    assert table_answer.locator('[data-testid="stDownloadButton"]', has_text="Download CSV").count() == 1
    markdown = page.locator('[data-testid="stPopoverBody"] code')  # the Markdown, to copy, on request
    click_until(page, table_answer.locator("button", has_text="Copy as Markdown"), lambda: markdown.count() > 0,
                "no Markdown to copy")  # fmt: skip
    assert "| Tea, green | 1 | $3.00 |" in page.locator('[data-testid="stPopoverBody"] code').first.inner_text()
    page.keyboard.press("Escape")

    json_answer = answers(page).nth(1)
    code = json_answer.locator('[data-testid="stCode"] code')
    assert code.count() == 1  # once
    shown = code.first.inner_text()
    assert "```" not in shown and '"total": "RM 9.00"' in shown and shown.startswith("{\n")
    assert json_answer.locator('[data-testid="stCode"] button').count() >= 1  # the copy button
    screenshot(page, "table-and-json.png")


def test_the_offline_engine_draws_a_real_table_page_as_a_table(page):
    found = sorted((SHARED_EVAL / "images").glob("page_table_02.*"))
    if not found:
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    upload(page, found[0])
    ask(page, QUICK_PROMPTS["Table → Markdown"])
    wait_until(lambda: page.locator(f'{ASSISTANT} [data-testid="stTable"] table').count() == 1, "no table", WAIT_S)
    wait_idle(page)
    table = page.locator(f'{ASSISTANT} [data-testid="stTable"] table')
    headers = [text.strip() for text in table.locator("thead th").all_inner_texts()]
    assert headers[-6:] == ["Date", "Description", "Number", "Debits", "Credits", "Balance"]
    assert table.locator("tbody tr").count() >= 10
    screenshot(page, "offline-table.png")


def test_the_full_screen_button_leaves_the_line_picker_clear(page, tmp_path):
    image = tmp_path / "receipt.png"
    image.write_bytes(image_bytes(text_image(["SHOP 42", "TOTAL 12.50", "THANK YOU"], size=(640, 300))))
    upload(page, image)
    ask_with_button(page, "quick_extract_text")
    wait_until(lambda: answers(page).count() == 1, "no answer", WAIT_S)
    wait_idle(page)
    picker = answers(page).last.locator('[data-testid="stSelectbox"]').first
    click_until(page, answers(page).last.locator("label", has_text="Show the lines on the page"),
                lambda: picker.count() > 0, "the line picker did not show")  # fmt: skip
    wait_idle(page)
    answers(page).last.locator('[data-testid="stImage"]').first.hover()  # the full-screen button shows on hover
    toolbar = answers(page).last.locator('[data-testid="stElementToolbar"]').first
    toolbar.wait_for()
    wait_until(lambda: toolbar.bounding_box() is not None, "no full-screen button", WAIT_S)
    picked, button = picker.bounding_box(), toolbar.bounding_box()
    assert picked is not None and button is not None
    assert button["y"] >= picked["y"] + picked["height"]  # below the picker, not over its arrow
    screenshot(page, "line-picker-and-full-screen.png")
