"""What the real-browser tests share: a Streamlit server on a free port, headless Chromium, waits.

Needs Debian's chromium (`apt-get install chromium`; Playwright's own browser download does not
work here) and the PyPI `playwright` package (its wheel carries the driver).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
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
def streamlit_server(root: Path, env: dict[str, str]) -> Iterator[dict]:
    """`streamlit run app.py` on a free 127.0.0.1 port with `env`; SIGTERM at the end."""
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


def open_app(browser, url: str, width: int = 1400, height: int = 1000):
    """A new browser context (its own Streamlit session) on the app, once the chat input is there."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector(CHAT_INPUT)
    wait_idle(page)
    return page


def running(page) -> bool:
    return page.locator('[data-testid="stStatusWidget"]').count() > 0


def wait_idle(page, timeout_s: float = 90) -> None:
    """A run is over when Streamlit's running indicator is gone (checked a few times: reruns chain)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if not running(page) else 0
        if quiet >= 3:
            return
        time.sleep(0.2)
    raise AssertionError("the app kept running")


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def upload(page, path: Path) -> None:
    page.locator('[class*="st-key-document_upload"] input[type="file"]').set_input_files(str(path))
    page.wait_for_selector(f'[data-testid="stImage"] img, [data-testid="stCaptionContainer"]:has-text("{path.name}")')
    wait_idle(page)


def ask(page, question: str) -> None:
    box = page.locator(CHAT_INPUT)
    wait_until(lambda: box.is_enabled(), "the chat input stayed disabled")
    box.fill(question)
    box.press("Enter")


def click_button(page, key: str) -> None:
    page.locator(f".st-key-{key} button:visible").first.click()


def select_option(page, label: str, option: str, attempts: int = 3) -> None:
    """Pick `option` in the selectbox labelled `label` (again if a rerun redrew the list meanwhile)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.locator("label", has_text=label))
    combobox = box.locator('[role="combobox"]').first  # Streamlit 1.67: a react-aria combobox
    for attempt in range(attempts):
        wait_idle(page)
        combobox.click()
        combobox.fill(option)  # typing filters the list and opens it (a click alone sometimes only focuses)
        choice = page.locator('[role="option"]', has_text=option).first
        try:
            choice.click(timeout=5_000)
            break
        except Exception:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)


def chat_id(page) -> str | None:
    from urllib.parse import parse_qs, urlparse

    return (parse_qs(urlparse(page.url).query).get("chat") or [None])[0]


def screenshot(page, name: str) -> Path:
    """Whole page: Streamlit scrolls inside its own container, so grow the viewport to its height first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => { const el = document.querySelector('[data-testid=\"stAppScrollToBottomContainer\"]')"
        " || document.querySelector('[data-testid=\"stMain\"]'); return el ? el.scrollHeight : 1000; }"
    )
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 200, 4000))})
    time.sleep(0.5)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
