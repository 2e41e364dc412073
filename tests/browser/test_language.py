"""A Russian browser in real Chromium (`locale="ru-RU"`, so Accept-Language and navigator.language are
Russian): the chat page reads Russian, Streamlit's own uploader texts included; a receipt uploaded, the quick
prompt and a free question asked in Russian are answered, and every visible text but names and the document's
own words is Russian; an English browser sees no Cyrillic; the chat input has the focus after load, after an
upload and after an answer; the language switch is remembered by the browser across a reload and a new tab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import (
    ASSISTANT,
    CHAT_INPUT,
    FOCUSED,
    USER,
    ask,
    ask_with_button,
    screenshot,
    select_option,
    streamlit_server,
    upload,
    wait_idle,
    wait_until,
)
from tests.helpers import english_words, image_bytes, text_image
from ui.language import SWITCH_KEY

pytestmark = pytest.mark.browser

DROPZONE = '[data-testid="stMainBlockContainer"] [data-testid="stFileUploaderDropzone"]'
NAV = '[data-testid="stSidebarNav"]'
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
RECEIPT = ["CAFE 21", "TOTAL 7.40"]
RECEIPT_WORDS = ["cafe", "total"]
PATH = re.compile(r"\S*/\S*")  # the chats' database file, under "Saved in"


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_language")
    env = {"CHATVLMLLM_MODELS_FILE": str(root / "none.toml")}
    with streamlit_server(root, env) as info:  # no model: the offline OCR engine answers
        yield info


@pytest.fixture
def russian(browser, app_pages):
    """A browser profile whose language is Russian (its own cookies), and a way to open the app in it."""
    return _profile(browser, app_pages, "ru-RU")


@pytest.fixture
def english(browser, app_pages):
    return _profile(browser, app_pages, "en-US")


def _profile(browser, app_pages, locale: str):
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
    return lambda: app_pages(context=context)


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

    upload(page, receipt_file(tmp_path))
    assert placeholder(page) == "Попросите извлечь текст (этот движок читает текст, но не отвечает на вопросы)"
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after upload")
    ask_with_button(page, "quick_extract_text")  # "Извлечь текст": its prompt goes in Russian
    # The answer is followed live ("Загружается ocr_auto…") until it is saved: wait for its text.
    wait_until(lambda: "TOTAL" in answer_text(page), "no transcription in the answer", timeout_s=120)
    wait_idle(page, 120)
    assert page.locator('[data-testid="stExpander"] summary', has_text="Добавить ещё документ").count() == 1
    assert "Извлеки весь текст из этого документа" in page.locator(USER).last.inner_text()
    ask(page, "Сколько всего к оплате?")  # a free question: ocr_auto says what it cannot do, in Russian
    wait_until(lambda: "офлайн-движок OCR" in answer_text(page), "no Russian answer to the question", timeout_s=120)
    wait_idle(page, 120)
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after an answer")
    texts = visible_texts(page)
    assert len(texts) >= 20 and english_in(texts, page) == []
    screenshot(page, "language-ru.png")

    page.reload()  # the chat comes back with its document: the input is enabled, and has the focus
    page.wait_for_selector(CHAT_INPUT)
    wait_idle(page)
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after load")
    page.keyboard.type("Итог")
    assert page.locator(CHAT_INPUT).input_value() == "Итог"


def test_an_english_browser_reads_english_and_the_input_has_the_focus(english, tmp_path):
    page = english()
    wait_until(lambda: "Upload" in dropzone_text(page), "Streamlit's uploader button is not English")
    upload(page, receipt_file(tmp_path))
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after upload")
    ask_with_button(page, "quick_extract_text")
    wait_until(lambda: "TOTAL" in answer_text(page), "no transcription in the answer", timeout_s=120)
    wait_idle(page, 120)
    assert [text for text in visible_texts(page) if CYRILLIC.search(text) and text != "Русский"] == []
    page.reload()
    page.wait_for_selector(CHAT_INPUT)
    wait_idle(page)
    wait_until(lambda: page.evaluate(FOCUSED) == "stChatInputTextArea", "the input is not focused after load")
    screenshot(page, "language-en.png")


def receipt_file(folder) -> Path:
    receipt = folder / "receipt.png"
    receipt.write_bytes(image_bytes(text_image(RECEIPT)))
    return receipt


# Every visible text node of the app, but the document's text as read (code blocks), icons' ligature names,
# what lies off screen until focused (Streamlit's "Skip to main content"), the questions typed, and the chat
# list: the chats' titles are stored in the language each chat was started in (another profile's Russian chat
# is listed in an English browser); the AppTest walk checks the list's own words.
VISIBLE_TEXTS = """() => {
  const skip = '[data-testid="stCode"], [data-testid="stIconMaterial"], script, style, .st-key-chat_list, '
    + '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"]) [data-testid="stMarkdownContainer"]';
  const walker = document.createTreeWalker(document.querySelector('[data-testid="stApp"]'), NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode, element = node.parentElement;
    if (!node.textContent.trim() || element.closest(skip) || !element.checkVisibility()) continue;
    if (getComputedStyle(element).fontFamily.includes('Material')) continue;  // an icon's name, drawn as its glyph
    const box = element.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1 || box.right <= 0 || box.bottom <= 0) continue;  // off screen
    texts.push(node.textContent.trim());
  }
  return texts;
}"""
CODE_TEXTS = "() => [...document.querySelectorAll('[data-testid=\"stCode\"]')].map(el => el.innerText)"


def visible_texts(page) -> list[str]:
    return page.evaluate(VISIBLE_TEXTS)


def english_in(texts: list[str], page) -> list[str]:
    """The visible texts with English words that are not names, nor words the page read off the document (its
    transcription's words: the free question's answer quotes the lines it found)."""
    read = {word.lower() for text in page.evaluate(CODE_TEXTS) for word in english_words(text)}
    words = [{word.lower() for word in english_words(PATH.sub(" ", text))} for text in texts]  # a path is a name
    return [text for text, found in zip(texts, words, strict=True) if found - read - set(RECEIPT_WORDS)]


def test_the_switch_is_remembered_by_the_browser(russian, browser, server):
    page = russian()
    wait_until(lambda: "Загрузить" in dropzone_text(page), "not Russian at first")
    select_option(page, "Язык", "English", key=SWITCH_KEY)  # its label turns "Language" with the pick
    wait_until(lambda: "Upload" in dropzone_text(page), "Streamlit's own text did not come back in English")
    assert placeholder(page).startswith("Upload a document first")
    assert "50 MB per file" in dropzone_text(page)

    # The sidebar's pickers whose value stays the same show their choice in English too (not "авто").
    def picker(key: str) -> str:
        return page.locator(f'.st-key-{key} [role="combobox"]').first.input_value()

    wait_until(lambda: picker("attention") == "auto" and not CYRILLIC.search(picker("model")),
               lambda: f"the pickers show {picker('attention')!r} and {picker('model')!r}")  # fmt: skip

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
