"""What the real-browser tests share: a Streamlit server on a free port, headless Chromium, waits.

Needs Debian's chromium (`apt-get install chromium`; Playwright's own browser download does not
work here) and the PyPI `playwright` package (its wheel carries the driver).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
CHAT_INPUT = '[data-testid="stChatInputTextArea"]'
MESSAGES = '[data-testid="stChatMessage"]'
ASSISTANT = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarAssistant"])'
USER = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])'
FOCUSED = "document.activeElement?.getAttribute('data-testid')"  # what has the focus
# Resolves after the browser has drawn two more frames (layout and paint done after a change).
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
WAIT_S = 300  # generous: the machine may be busy (CI beside two CPU hogs)
LOST_CLICK_S = 20  # a click whose state has not come by then, with the app idle, was lost


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path, for every browser test (skips or fails as `chromium_or_skip`)."""
    return chromium_or_skip()


def chromium_or_skip() -> str:
    """Chromium's path; skip without it, unless CHATVLMLLM_REQUIRE_BROWSER says it must run (CI)."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    message = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CHATVLMLLM_REQUIRE_BROWSER"):
        pytest.fail(message + " and CHATVLMLLM_REQUIRE_BROWSER is set")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
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


@contextmanager
def streamlit_server(root: Path, env: dict[str, str] | None = None) -> Iterator[dict]:
    """`streamlit run app.py` on a free 127.0.0.1 port with `env`; SIGTERM at the end."""
    env = {"CHATVLMLLM_DATA_DIR": str(root / "data"), **(env or {})}  # the chats' database under `root` by default
    port = free_port()
    log = root / "streamlit.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield {"url": url, "db": Path(env["CHATVLMLLM_DATA_DIR"]) / "chats.sqlite3", "root": root, "log": log}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def chromium_browser(executable: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def browser(chromium, server):
    """One Chromium per test module, against that module's own `server` fixture (its data and models)."""
    with chromium_browser(chromium) as instance:
        yield instance


@pytest.fixture
def app_pages(browser, server, request):
    """Opens the app in a new browser page: `app_pages(width, height, context=)` (by default its own context, so
    its own Streamlit session). What each page showed is kept when the test fails; their contexts close after."""
    pages = []

    def open_page(width: int = 1400, height: int = 1000, context=None):
        page = open_app(browser, server["url"], width, height, context)
        pages.append(page)
        return page

    failures = request.session.testsfailed
    yield open_page
    for index, page in enumerate(pages):
        if request.session.testsfailed > failures:
            screenshot(page, f"FAILED-{request.node.name}-{index}.png")
    for context in dict.fromkeys(page.context for page in pages):
        context.close()


@pytest.fixture
def page(app_pages):
    """The app in its own browser context at 1400×1000."""
    return app_pages()


def open_app(browser, url: str, width: int = 1400, height: int = 1000, context=None):
    """A new page on the app (in `context`, else a new one: its own Streamlit session), once the chat input is there."""
    context = context or browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(120_000)  # a busy machine: Playwright's own waits get the same room as ours
    page.goto(url)
    page.wait_for_selector(CHAT_INPUT)
    wait_idle(page)
    return page


def script_state(page) -> str | None:
    """Streamlit's own run state ("running", "notRunning", ...), on its root element at once.

    Its running indicator (`stStatusWidget`) shows only after a run has lasted 500 ms, so a test
    that waits for the indicator to go can pass while a short run is still under way.
    """
    return page.locator('[data-testid="stApp"]').first.get_attribute("data-test-script-state")


def wait_idle(page, timeout_s: float = 120) -> None:
    """No run under way, several checks in a row (reruns chain). A click's run may not have begun
    yet: after an action, wait for the state it leads to as well (see new_chat, upload, wait_answer)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 3:
        if time.monotonic() > deadline:
            raise AssertionError(f"the app kept running ({script_state(page)})")
        quiet = quiet + 1 if script_state(page) == "notRunning" else 0
        time.sleep(0.1)  # a poll interval, not a wait for something to happen


def wait_until(condition: Callable[[], object], what: str | Callable[[], str], timeout_s: float = 60) -> None:
    """Poll `condition` until it holds; else fail with `what` (a callable: worded at failure, with what was seen)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what() if callable(what) else what)
        time.sleep(0.1)


def click_until(page, target, reached: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Click `target` (a locator) and wait until `reached()` holds.

    On a busy machine a click that lands while a rerun redraws its element is lost. A second click is
    made only once the first is certainly lost: its state has not come after LOST_CLICK_S and no run
    is under way (a click that started a slow run gets that run's whole time first). So a toggle is
    never clicked twice.
    """
    target.click()
    try:
        wait_until(reached, what, LOST_CLICK_S)
        return
    except AssertionError:
        wait_idle(page, timeout_s)
    if reached():
        return
    target.click()
    wait_until(reached, what, timeout_s)


def uploader_chats(page) -> list[str]:
    """The chat ids of the document uploaders on the page (its key is `document_upload_<chat id>`).

    Two while a rerun has not yet replaced the previous chat's page (Streamlit keeps the old
    elements until the new run draws over them).
    """
    classes = page.locator('[class*="st-key-document_upload_"]').evaluate_all("els => els.map(e => e.className)")
    return [m.group(1) for c in classes for m in [re.search(r"st-key-document_upload_(\w+)", c)] if m]


def new_chat(page) -> str:
    """Click "New chat" and wait until the page is that new, empty chat; returns its id."""
    before = set(uploader_chats(page))

    def fresh() -> bool:
        shown = uploader_chats(page)
        return len(shown) == 1 and shown[0] not in before and chat_id(page) is None

    click_until(page, page.locator(".st-key-new_chat button:visible").first, fresh,
                "the new chat did not replace the previous one")  # fmt: skip
    wait_idle(page)
    wait_until(lambda: page.locator(MESSAGES).count() == 0, "the new chat shows messages")
    return uploader_chats(page)[0]


def upload(page, path: Path) -> str:
    """Upload `path` into the chat on the page and wait until it is saved and previewed; returns the chat id."""
    chat = start_upload(page, path)
    wait_uploaded(page, chat, path.name)
    return chat


def start_upload(page, path: Path) -> str:
    """Hand `path` to the chat's uploader (without waiting for it); returns the chat id."""
    wait_until(lambda: len(uploader_chats(page)) == 1, "not one document uploader on the page", timeout_s=120)
    chat = uploader_chats(page)[0]
    page.locator(f'.st-key-document_upload_{chat} input[type="file"]').set_input_files(str(path))
    return chat


def wait_uploaded(page, chat: str, name: str, timeout_s: float = 120) -> None:
    """Until the chat is saved with its document (the URL names it) and the preview shows `name`."""
    preview = page.locator('[data-testid="stImageCaption"], [data-testid="stCaptionContainer"]', has_text=name)
    wait_until(
        lambda: chat_id(page) == chat and preview.count() > 0,
        lambda: f"{name} not saved and shown: chat {chat}, URL {page.url}, {preview.count()} preview(s)",
        timeout_s,
    )
    wait_idle(page, timeout_s)


def stored_turns(db: Path, session_id: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM turns WHERE session_id = ? ORDER BY position", (session_id,))
        return [json.loads(data) for (data,) in rows.fetchall()]


def wait_answer(page, db: Path, answers: int, timeout_s: float = 300) -> list[dict]:
    """Until the chat on the page holds `answers` settled answers in the database (saved, not partial)
    and the page shows them with the chat input enabled again; returns the stored turns."""
    wait_until(lambda: chat_id(page) is not None, "the chat was never saved", timeout_s)
    session = chat_id(page)

    def settled() -> bool:
        turns = [t for t in stored_turns(db, session) if t["role"] == "assistant"]
        return len(turns) >= answers and not turns[-1].get("incomplete")

    wait_until(settled, f"answer #{answers} was never saved", timeout_s)

    def shown() -> bool:
        return (
            page.locator(ASSISTANT).count() >= answers
            and page.locator(".st-key-stop_generation").count() == 0  # the live answer is history now
            # nor the asking run's "Starting…" (a busy browser may still show it after a fast answer was saved)
            and page.locator(".st-key-answer_starting").count() == 0
            and page.locator(CHAT_INPUT).is_enabled()
        )

    wait_until(shown, f"answer #{answers} is saved but not shown", timeout_s)
    wait_idle(page, timeout_s)
    return stored_turns(db, session)


def ask(page, question: str) -> None:
    box = page.locator(CHAT_INPUT)
    wait_until(lambda: box.is_enabled(), "the chat input stayed disabled", timeout_s=120)
    box.fill(question)
    box.press("Enter")


def click_button(page, key: str) -> None:
    page.locator(f".st-key-{key} button:visible").first.click()


def ask_with_button(page, key: str) -> None:
    """Click the quick prompt `key` until its question shows in the chat (a lost click is clicked again)."""
    questions = page.locator(USER)
    before = questions.count()
    click_until(page, page.locator(f".st-key-{key} button:visible").first, lambda: questions.count() > before,
                f"the {key} button asked nothing")  # fmt: skip


def download(page, button) -> Path:
    """Click a download `button` until the browser saves a file; returns the file (a lost click, as in click_until,
    is clicked again once the app is idle)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for timeout_s in (LOST_CLICK_S, WAIT_S):
        try:
            with page.expect_download(timeout=timeout_s * 1000) as saved:
                button.click()
            return Path(saved.value.path())
        except PlaywrightTimeout:
            if timeout_s == WAIT_S:
                raise
            wait_idle(page, WAIT_S)
    raise AssertionError("unreachable")


def select_option(page, label: str, option: str, attempts: int = 3, key: str | None = None) -> None:
    """Pick `option` in the selectbox labelled `label`, or the one with widget `key` (a label that changes
    with the pick, such as the language switch's); again if a rerun redrew the list meanwhile."""
    if key is not None:
        box = page.locator(f'.st-key-{key} [data-testid="stSelectbox"]')
    else:
        box = page.locator('[data-testid="stSelectbox"]').filter(has=page.locator("label", has_text=label))
    combobox = box.locator('[role="combobox"]').first  # Streamlit 1.67: a react-aria combobox

    def shows(value: str) -> bool:  # "Russian" picks "Russian (Cyrillic)"; "Page 1" is not "Page 10"
        return value == option or value.startswith(option + " ")

    for attempt in range(attempts):
        wait_idle(page)
        combobox.click()
        combobox.fill(option)  # typing filters the list and opens it (a click alone sometimes only focuses)
        choice = page.locator('[role="option"]', has_text=option).first
        try:
            choice.click(timeout=15_000)
            wait_until(lambda: shows(combobox.input_value()), f"{label} does not show {option}", timeout_s=15)
            break
        except Exception:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)


def chat_id(page) -> str | None:
    """The chat the URL names (`?chat=<id>`), as the page's own location says it.

    (`page.url` can lag behind: Streamlit changes the query with history.replaceState.)
    """
    from urllib.parse import parse_qs, urlparse

    return (parse_qs(urlparse(page.evaluate("location.href")).query).get("chat") or [None])[0]


def screenshot(page, name: str) -> Path:
    """Whole page: Streamlit scrolls inside its own container, so grow the viewport to its height first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => { const el = document.querySelector('[data-testid=\"stAppScrollToBottomContainer\"]')"
        " || document.querySelector('[data-testid=\"stMain\"]'); return el ? el.scrollHeight : 1000; }"
    )
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 200, 4000))})
    page.evaluate(NEXT_FRAMES)  # the page has laid itself out at the new size
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
