"""The System, Benchmark and Models pages in the interface language (issue 21), through AppTest: opened from
app.py with a Russian or an English browser, every text they show is walked (tests/helpers.py: shown_texts,
english_texts). In Russian no English is left but names; in English there is no Cyrillic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.models.catalog import load_catalog
from tests.helpers import ShownText, engine_for, english_texts, shown_texts

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
PAGES = sorted(str(path.relative_to(REPO)) for path in (REPO / "pages").glob("*.py"))
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


@pytest.fixture
def offline_app(tmp_path, monkeypatch):
    """The built-in catalog, no network, the offline OCR engine loaded (the System page lists it)."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    st.cache_resource.clear()
    st.cache_data.clear()
    engine_for(default_cache(), "rapidocr")
    yield
    default_cache().unload()
    st.cache_resource.clear()


def open_page(page: str, locale: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.context = {"locale": locale}
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def catalog_names() -> set[str]:
    """What the catalog calls its models and their licences: names, shown as they are in every language."""
    return {text for spec in load_catalog().values() for text in (spec.display_name, spec.licence) if text}


def without_names(texts: list[ShownText]) -> list[ShownText]:
    names = sorted(catalog_names(), key=len, reverse=True)
    cleaned = []
    for shown in texts:
        text = shown.text
        for name in names:
            text = text.replace(name, "")
        cleaned.append(ShownText(shown.kind, shown.key, shown.within, text))
    return cleaned


def page_texts(at: AppTest) -> list[ShownText]:
    return shown_texts(at.main) + shown_texts(at.sidebar)


def test_every_page_is_covered():
    assert PAGES == ["pages/1_System.py", "pages/2_Benchmark.py", "pages/3_Models.py"]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_a_russian_browser_reads_the_page_in_russian(offline_app, page):
    at = open_page(page, "ru-RU")
    texts = page_texts(at)
    assert len(texts) >= 10  # the walk sees the page: a title, labels, captions, buttons
    assert english_texts(without_names(texts)) == []
    assert CYRILLIC.search(at.title[0].value)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_an_english_browser_reads_the_page_without_cyrillic(offline_app, page):
    at = open_page(page, "en-US")
    # The language switch lists each language in its own name: "Русский" is the one Cyrillic word.
    cyrillic = [shown for shown in page_texts(at) if CYRILLIC.search(shown.text) and shown.key != "ui_language_switch"]
    assert cyrillic == []
    assert english_texts(page_texts(at)) != []  # the checker is not blind to English


@pytest.mark.slow
def test_the_system_pages_tables_and_unload_read_russian(offline_app):
    at = open_page("pages/1_System.py", "ru-RU")
    hardware, loaded = (frame.value for frame in at.dataframe)
    facts = dict(zip(hardware["Свойство"], hardware["Значение"], strict=True))
    assert facts["GPU"] == "нет GPU" and facts["Версия flash-attn"] == "не установлен"
    assert facts["flash-attn"] in ("flash-attn не установлен", "flash-attn нужен GPU с CUDA")  # the probe's reason
    engine = loaded[loaded["Модель"] == "rapidocr"].iloc[0]
    assert engine["Память (МБ)"] == "не измерено" and engine["Квантование"] == "нет"
    plans = at.table[0].value
    assert plans.loc["rapidocr", "Состояние"] == "готова"
    assert "работает на CPU" in plans.loc["rapidocr", "Почему"]  # the planner's reason, translated where shown
    at.button(key="system_unload").click().run()
    assert [toast.value for toast in at.toast] == ["Выгружена 1 модель; её память свободна."]


@pytest.mark.slow
def test_the_models_pages_reasons_follow_the_language_switch(offline_app):
    at = open_page("pages/3_Models.py", "ru-RU")
    assert at.warning[0].value == "Скачивание недоступно: задана переменная HF_HUB_OFFLINE."  # tests run offline
    at.sidebar.selectbox(key="ui_language_switch").set_value("en").run()
    assert not at.exception
    assert at.title[0].value == "Models"
    assert at.warning[0].value == "Downloads are unavailable: HF_HUB_OFFLINE is set."  # not the Russian one cached


@pytest.mark.slow
def test_the_sidebar_outside_the_chat_page_reads_russian(offline_app):
    at = AppTest.from_file(APP, default_timeout=90)
    at.context = {"locale": "ru-RU"}
    at.run()
    assert not at.exception
    texts = shown_texts(at.sidebar)
    assert len(texts) >= 15 and english_texts(without_names(texts)) == []
    assert at.sidebar.selectbox(key="attention").options[0] == "авто"
    assert at.sidebar.selectbox(key="language").value == "ru"  # the document language followed, in Russian words
    assert "Русский (кириллица)" in at.sidebar.selectbox(key="language").options
