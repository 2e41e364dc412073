"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1 driven by headless Chromium.

A tiny real Qwen2-VL checkpoint is configured through the user catalog, exactly as a
power user would. Screenshots go to artifacts/browser/ (not committed).

Needs Debian's chromium (`apt-get install chromium`; Playwright's own browser download
does not work here). Skips without it unless CHATVLMLLM_REQUIRE_BROWSER is set (CI).

Every step waits for the state it leads to (the upload saved, the answer settled in the
database and shown), with generous timeouts and no fixed sleeps.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.browser.conftest import (
    ASSISTANT,
    CHAT_INPUT,
    USER,
    WAIT_S,
    ask,
    chat_id,
    click_until,
    new_chat,
    screenshot,
    streamlit_server,
    upload,
    wait_answer,
    wait_idle,
    wait_until,
)
from tests.helpers import image_bytes, text_image, write_models_file

pytestmark = pytest.mark.browser

MODEL_KEY = "tiny_vl"


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory, tiny_qwen2_vl):
    root = tmp_path_factory.mktemp("browser_e2e")
    models = write_models_file(root / "models.toml", {MODEL_KEY: {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    env = {
        "CHATVLMLLM_MODELS_FILE": str(models),
        "CHATVLMLLM_DEFAULT_MODEL": MODEL_KEY,
        "CHATVLMLLM_FALLBACK": MODEL_KEY,
    }
    with streamlit_server(root, env) as info:
        yield info


def set_generation(page, max_new_tokens: int, stop_loops: bool) -> None:
    expander = page.locator('[data-testid="stExpander"] summary', has_text="Generation settings")
    tokens = page.locator(".st-key-max_new_tokens input")
    if not tokens.is_visible():
        click_until(page, expander, tokens.is_visible, "the generation settings did not open")
    tokens.fill(str(max_new_tokens))
    tokens.press("Enter")
    wait_until(lambda: tokens.input_value() == str(max_new_tokens), "max new tokens not set")
    guard = page.locator(".st-key-repetition_guard input[type=checkbox]")
    if guard.is_checked() != stop_loops:
        click_until(page, page.locator(".st-key-repetition_guard label"), lambda: guard.is_checked() == stop_loops,
                    "the repetition guard did not change")  # fmt: skip
    wait_idle(page)


def upload_page(page, tmp_path: Path) -> str:
    path = tmp_path / "invoice.png"
    path.write_bytes(image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"])))
    return upload(page, path)


def last_assistant_turn(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM turns WHERE role = 'assistant' ORDER BY rowid DESC LIMIT 1").fetchone()
    return json.loads(data)


def test_upload_ask_stream_and_sidebar(page, server, tmp_path):
    set_generation(page, max_new_tokens=24, stop_loops=True)
    upload_page(page, tmp_path)
    ask(page, "What is the total?")
    wait_answer(page, server["db"], 1, WAIT_S)

    assistant = page.locator(ASSISTANT)
    # The answer's caption: the stop reason is in words, not "stopped by max_tokens".
    caption = assistant.last.locator('[data-testid="stCaptionContainer"]', has_text="reached the length limit")
    assert MODEL_KEY in caption.inner_text()
    click_until(page, page.locator(".st-key-show_details label"),  # developer figures on request
                lambda: "attention sdpa" in caption.inner_text(), "the technical details are not shown")  # fmt: skip
    wait_idle(page)
    caption_text = caption.inner_text()
    assert "attention sdpa" in caption_text and "tokens/s" in caption_text and "time to first word" in caption_text
    answer_text = assistant.last.locator('[data-testid="stMarkdown"]').first.inner_text()
    stored = last_assistant_turn(server["db"])
    assert stored["text"].strip() and answer_text.strip()  # random model text: compare metadata, not words
    assert stored["metrics"]["new_tokens"] == 24 and stored["metrics"]["stopped_by"] == "max_tokens"

    assert "invoice.png, page 1" in page.locator(USER).last.inner_text()

    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert f"Model: {MODEL_KEY}" in sidebar.replace("\n", " ")
    assert "Attention: sdpa" in sidebar and "dtype: float32" in sidebar and "device: cpu" in sidebar
    assert "loaded in" in sidebar and "time to first word" in sidebar and "tokens/s" in sidebar
    path = screenshot(page, "vlm-answer.png")
    assert path.stat().st_size > 10_000


def test_stop_button_cancels_generation(page, server, tmp_path):
    new_chat(page)
    set_generation(page, max_new_tokens=8192, stop_loops=False)  # the tiny model would loop for minutes
    session_id = upload_page(page, tmp_path)
    ask(page, "Extract all text")

    streamed = page.locator(ASSISTANT).last.locator('[data-testid="stMarkdown"]').first
    streamed.wait_for(timeout=WAIT_S * 1000)
    wait_until(lambda: streamed.inner_text().strip(), "no streamed text", WAIT_S)  # generation is under way
    page.locator(".st-key-stop_generation button:visible").first.click()
    wait_answer(page, server["db"], 1, WAIT_S)  # Stop saved the answer: the page is free again
    page.locator(ASSISTANT).last.locator('[data-testid="stCaptionContainer"]', has_text="stopped by you").wait_for()

    # Stop saves the answer at once; the engine's token counts join it when generate has ended.
    wait_until(lambda: "new_tokens" in last_assistant_turn(server["db"])["metrics"], "token counts never saved", WAIT_S)
    stored = last_assistant_turn(server["db"])
    assert stored["metrics"]["stopped_by"] == "cancelled"
    assert 0 < stored["metrics"]["new_tokens"] < 8192
    assert stored["text"].strip()
    assert chat_id(page) == session_id  # still the same chat
    assert "invoice.png, page 1" in page.locator(USER).last.inner_text()
    screenshot(page, "vlm-stopped.png")

    page.reload()  # a browser reload (same ?chat=) reopens the chat from the store
    messages = page.locator('[data-testid="stChatMessage"]')
    wait_until(lambda: messages.count() == 2, "the reopened chat does not show its two messages")
    wait_idle(page)
    assert "Stopped by you" in page.locator(ASSISTANT).last.inner_text()
    assert page.locator('[data-testid="stImage"] img').count() >= 1  # the stored document's preview


def test_the_chat_input_has_focus_after_load(page):
    """Type at once: no 32 Tab presses to reach the question box."""
    wait_until(
        lambda: page.evaluate("document.activeElement?.getAttribute('data-testid')") == "stChatInputTextArea",
        "the chat input is not focused after load",
    )
    page.keyboard.type("Hello")
    assert page.locator(CHAT_INPUT).input_value() == "Hello"
