"""A Russian browser in real Chromium (`locale="ru-RU"`, so Accept-Language and navigator.language are
Russian): the first translated slice reads Russian, Streamlit's own uploader texts included; a receipt
uploaded and a question asked in Russian are answered; the language switch is remembered by the browser
across a reload and a new tab."""

from __future__ import annotations

import pytest

from tests.browser.conftest import (
    ASSISTANT,
    CHAT_INPUT,
    ask,
    chromium_browser,
    screenshot,
    select_option,
    streamlit_server,
    upload,
    wait_idle,
    wait_until,
)
from tests.helpers import english_words, image_bytes, text_image

pytestmark = pytest.mark.browser

DROPZONE = '[data-testid="stMainBlockContainer"] [data-testid="stFileUploaderDropzone"]'
NAV = '[data-testid="stSidebarNav"]'


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_language")
    env = {"CHATVLMLLM_DATA_DIR": str(root / "data"), "CHATVLMLLM_MODELS_FILE": str(root / "none.toml")}
    with streamlit_server(root, env) as info:  # no model: the offline OCR engine answers
        yield info


@pytest.fixture(scope="module")
def browser(chromium, server):
    with chromium_browser(chromium) as instance:
        yield instance


@pytest.fixture
def russian(browser, server, request):
    """A browser profile whose language is Russian (its own cookies), and a way to open the app in it."""
    context = browser.new_context(locale="ru-RU", viewport={"width": 1400, "height": 1000})
    pages = []

    def open_page():
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server["url"])
        page.wait_for_selector(CHAT_INPUT)
        wait_idle(page)
        pages.append(page)
        return page

    failures = request.session.testsfailed
    yield open_page
    if request.session.testsfailed > failures:
        for index, page in enumerate(pages):
            screenshot(page, f"FAILED-{request.node.name}-{index}.png")
    context.close()


def dropzone_text(page) -> str:
    return page.locator(DROPZONE).inner_text()


def answer_text(page) -> str:
    """The last answer's text; empty while there is none or while a rerun redraws it."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        answers = page.locator(ASSISTANT)
        return answers.last.inner_text(timeout=2_000) if answers.count() else ""
    except PlaywrightError:
        return ""


def placeholder(page) -> str:
    return page.locator(CHAT_INPUT).get_attribute("placeholder") or ""


def test_a_russian_browser_reads_the_slice_in_russian_and_gets_answers(russian, tmp_path):
    page = russian()
    wait_until(lambda: "Загрузить" in dropzone_text(page), "Streamlit's uploader button stayed English")
    dropzone = dropzone_text(page)
    assert "до 50 МБ на файл" in dropzone and english_words(dropzone.replace("upload", "")) == []  # icon name
    nav = page.locator(NAV).inner_text().split()  # each title after its material icon's name
    assert nav[1::2] == ["Чат", "Система", "Бенчмарк", "Модели"]
    assert placeholder(page).startswith("Сначала загрузите документ")
    assert page.locator(".st-key-quick_extract_text button:visible").first.inner_text() == "Извлечь текст"
    main = page.locator('[data-testid="stMainBlockContainer"]')
    assert "офлайн-движок OCR прочитает его текст" in main.inner_text()

    # While a file is dragged over it, the uploader says so in Russian too.
    dragged = page.evaluate_handle(
        "() => { const data = new DataTransfer(); data.items.add(new File(['x'], 'a.png')); return data; }"
    )
    page.locator(DROPZONE).dispatch_event("dragenter", {"dataTransfer": dragged})
    wait_until(lambda: "Перетащите файл сюда" in dropzone_text(page), "the drag text stayed English")
    page.locator(DROPZONE).dispatch_event("dragleave", {"dataTransfer": dragged})

    receipt = tmp_path / "receipt.png"
    receipt.write_bytes(image_bytes(text_image(["CAFE 21", "TOTAL 7.40"])))
    upload(page, receipt)
    assert placeholder(page) == "Попросите извлечь текст (этот движок читает текст, но не отвечает на вопросы)"
    ask(page, "Извлеки весь текст")
    # The answer is followed live ("Loading ocr_auto…") until it is saved: wait for its text.
    wait_until(lambda: "TOTAL" in answer_text(page), "no transcription in the answer", timeout_s=120)
    wait_idle(page, 120)
    assert page.locator('[data-testid="stExpander"] summary', has_text="Добавить ещё документ").count() == 1
    screenshot(page, "language-ru.png")


def test_the_switch_is_remembered_by_the_browser(russian, browser, server):
    page = russian()
    wait_until(lambda: "Загрузить" in dropzone_text(page), "not Russian at first")
    select_option(page, "Язык", "English")
    wait_until(lambda: "Upload" in dropzone_text(page), "Streamlit's own text did not come back in English")
    assert placeholder(page).startswith("Upload a document first")
    assert "50 MB per file" in dropzone_text(page)

    page.reload()
    page.wait_for_selector(CHAT_INPUT)
    wait_idle(page)
    assert placeholder(page).startswith("Upload a document first")  # the browser still says ru-RU
    assert placeholder(russian()).startswith("Upload a document first")  # a new tab of this browser too

    other = browser.new_context(locale="ru-RU")  # another browser (profile): its own language
    try:
        fresh = other.new_page()
        fresh.goto(server["url"])
        fresh.wait_for_selector(CHAT_INPUT)
        wait_idle(fresh)
        assert placeholder(fresh).startswith("Сначала загрузите документ")
    finally:
        other.close()
