"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1 driven by headless Chromium.

A tiny real Qwen2-VL checkpoint is configured through the user catalog, exactly as a
power user would. Screenshots go to artifacts/browser/ (not committed).

Needs Debian's chromium (`apt-get install chromium`; Playwright's own browser download
does not work here). Skips without it unless CHATVLMLLM_REQUIRE_BROWSER is set (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import image_bytes, text_image, write_models_file

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # mandatory as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
MODEL_KEY = "tiny_vl"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; skip without it, unless CHATVLMLLM_REQUIRE_BROWSER says it must run (CI)."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    message = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CHATVLMLLM_REQUIRE_BROWSER"):
        pytest.fail(message + " and CHATVLMLLM_REQUIRE_BROWSER is set")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not become healthy in {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory, tiny_qwen2_vl):
    root = tmp_path_factory.mktemp("browser_e2e")
    models = write_models_file(root / "models.toml", {MODEL_KEY: {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    env = {
        **os.environ,
        "CHATVLMLLM_MODELS_FILE": str(models),
        "CHATVLMLLM_DATA_DIR": str(root / "data"),
        "CHATVLMLLM_DEFAULT_MODEL": MODEL_KEY,
        "CHATVLMLLM_FALLBACK": MODEL_KEY,
        "HF_HUB_OFFLINE": "1",
    }
    port = _free_port()
    log = root / "streamlit.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield {"url": url, "db": root / "data" / "chats.sqlite3", "root": root, "log": log}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(chromium, server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server, request):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(server["url"])
    page.wait_for_selector('[data-testid="stChatInputTextArea"]')
    wait_idle(page)
    failures = request.session.testsfailed
    yield page
    if request.session.testsfailed > failures:  # keep what the browser showed when it failed
        screenshot(page, f"FAILED-{request.node.name}.png")
    page.close()


def wait_idle(page, timeout_s: float = 60) -> None:
    """A run is over when Streamlit's running indicator is gone (checked twice: reruns chain)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if page.locator('[data-testid="stStatusWidget"]').count() == 0 else 0
        if quiet >= 3:
            return
        time.sleep(0.2)
    raise AssertionError("the app kept running")


def wait_until(condition, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def set_generation(page, max_new_tokens: int, stop_loops: bool) -> None:
    page.locator('[data-testid="stExpander"] summary', has_text="Generation settings").click()
    tokens = page.locator(".st-key-max_new_tokens input")
    tokens.fill(str(max_new_tokens))
    tokens.press("Enter")
    wait_idle(page)
    guard = page.locator(".st-key-repetition_guard input[type=checkbox]")
    if guard.is_checked() != stop_loops:
        page.locator(".st-key-repetition_guard label").click()
        wait_idle(page)


def upload_page(page, tmp_path: Path) -> None:
    path = tmp_path / "invoice.png"
    path.write_bytes(image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"])))
    page.locator('[class*="st-key-document_upload"] input[type="file"]').set_input_files(str(path))
    page.wait_for_selector('[data-testid="stImage"] img')
    wait_idle(page)


def ask(page, question: str) -> None:
    box = page.locator('[data-testid="stChatInputTextArea"]')
    box.fill(question)
    box.press("Enter")


def screenshot(page, name: str) -> Path:
    """Whole page: Streamlit scrolls inside its own container, so grow the viewport to its height first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => { const el = document.querySelector('[data-testid=\"stAppScrollToBottomContainer\"]')"
        " || document.querySelector('[data-testid=\"stMain\"]'); return el ? el.scrollHeight : 1000; }"
    )
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 200, 4000))})
    time.sleep(0.5)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def last_assistant_turn(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM turns WHERE role = 'assistant' ORDER BY rowid DESC LIMIT 1").fetchone()
    return json.loads(data)


def test_upload_ask_stream_and_sidebar(page, server, tmp_path):
    set_generation(page, max_new_tokens=24, stop_loops=True)
    upload_page(page, tmp_path)
    ask(page, "What is the total?")

    assistant = page.locator('[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarAssistant"])')
    caption = assistant.last.locator('[data-testid="stCaptionContainer"]', has_text="tok/s")
    caption.wait_for(timeout=60_000)
    wait_idle(page)
    caption_text = caption.inner_text()
    assert MODEL_KEY in caption_text and "sdpa" in caption_text
    answer_text = assistant.last.locator('[data-testid="stMarkdown"]').first.inner_text()
    stored = last_assistant_turn(server["db"])
    assert stored["text"].strip() and answer_text.strip()  # random model text: compare metadata, not words
    assert stored["metrics"]["new_tokens"] == 24 and stored["metrics"]["stopped_by"] == "max_tokens"

    user = page.locator('[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])')
    assert "invoice.png, page 1" in user.last.inner_text()

    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert f"Model: {MODEL_KEY}" in sidebar.replace("\n", " ")
    assert "Attention: sdpa" in sidebar and "dtype: float32" in sidebar and "device: cpu" in sidebar
    assert "loaded in" in sidebar and "TTFT" in sidebar and "tok/s" in sidebar
    path = screenshot(page, "answer.png")
    assert path.stat().st_size > 10_000


def test_stop_button_cancels_generation(page, server, tmp_path):
    page.locator(".st-key-new_chat button:visible").first.click()
    wait_idle(page)
    set_generation(page, max_new_tokens=8192, stop_loops=False)  # the tiny model would loop for minutes
    upload_page(page, tmp_path)
    chat_url = page.url  # ?chat=<id>: the upload saved the new chat
    ask(page, "Extract all text")

    assistant = page.locator('[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarAssistant"])')
    streamed = assistant.last.locator('[data-testid="stMarkdown"]').first
    streamed.wait_for(timeout=60_000)  # the first tokens are on the page: generation is under way
    wait_until(lambda: streamed.inner_text().strip(), "no streamed text")
    started = time.monotonic()
    page.locator(".st-key-stop_generation button:visible").first.click()
    assistant.last.locator('[data-testid="stCaptionContainer"]', has_text="stopped: cancelled").wait_for(timeout=30_000)
    wait_idle(page)
    stopped_after = time.monotonic() - started

    stored = last_assistant_turn(server["db"])
    assert stored["metrics"]["stopped_by"] == "cancelled"
    assert 0 < stored["metrics"]["new_tokens"] < 8192
    assert stored["text"].strip()
    assert stopped_after < 30
    assert page.url == chat_url and "?chat=" in chat_url  # still the same chat
    user = page.locator('[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])')
    assert "invoice.png, page 1" in user.last.inner_text()
    screenshot(page, "stopped.png")

    page.reload()  # a browser reload reopens the chat from the store
    page.wait_for_selector('[data-testid="stChatMessage"]')
    wait_idle(page)
    assert page.locator('[data-testid="stChatMessage"]').count() == 2
    assert "stopped: cancelled" in assistant.last.inner_text()
    assert page.locator('[data-testid="stImage"] img').count() >= 1  # the stored document's preview
