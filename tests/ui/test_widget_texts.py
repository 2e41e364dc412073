"""Streamlit's own widget texts (ui.widget_texts): each is still what the installed Streamlit shows, each has
a translation, and the page carries the script that rewrites them (the browser test sees it work)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from chatvlmllm.i18n import use_language
from tests.helpers import english_words
from ui import widget_texts

REPO = Path(__file__).resolve().parents[2]
BUNDLE = Path(streamlit.__file__).parent / "static" / "static" / "js"
# What Streamlit shows for each text, as a person sees it (the bundle's template filled in).
AS_SHOWN = {
    "`Upload`": "Upload",
    "} per file`": "50MB per file",
    "`Drag and drop a file here`": "Drag and drop a file here",
}


@pytest.fixture(scope="module")
def bundle() -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in BUNDLE.glob("*.js"))


def test_each_text_is_still_in_the_installed_streamlit(bundle):
    # An upgrade that rewords one of them fails here, instead of leaving it in English on the page.
    for text in widget_texts.texts():
        assert text.bundled in bundle, f"Streamlit no longer writes {text.bundled!r}: update ui/widget_texts.py"
        assert re.fullmatch(text.english, AS_SHOWN[text.bundled])


def test_each_text_is_translated():
    with use_language("ru"):
        russian = {t.bundled: t.text for t in widget_texts.texts()}
    assert russian == {
        "`Upload`": "Загрузить",
        "} per file`": "до 50 МБ на файл",
        "`Drag and drop a file here`": "Перетащите файл сюда",
    }
    assert all(english_words(text) == [] for text in russian.values())
    with use_language("en"):  # English puts Streamlit's wording back after a switch
        assert [t.text for t in widget_texts.texts()][0::2] == ["Upload", "Drag and drop a file here"]


def test_the_script_carries_the_rules_as_data(monkeypatch):
    with use_language("ru"):
        script = widget_texts.script()
    rules = json.loads(re.search(r"window\.chatvlmllmTexts = (\[.*?\]);", script).group(1))
    assert [rule["text"] for rule in rules][:1] == ["Загрузить"]
    assert "</" not in script.split("<script>", 1)[1].rsplit("</script>", 1)[0]  # data cannot end the script


def test_every_page_carries_the_script_in_a_hidden_container():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    at.context = {"locale": "ru-RU"}
    at.run()
    holder = at.main.get_by_key("streamlit_texts")
    scripts = [node.proto.body for node in holder.children.values() if node.type == "html"]
    assert len(scripts) == 1 and "Загрузить" in scripts[0] and "MutationObserver" in scripts[0]
