"""The OCR request policy (chatvlmllm.models.tasks) and the one JSON rule for extras (chatvlmllm.jsonable)."""

from __future__ import annotations

import json

import pytest

from chatvlmllm.decisions import Task
from chatvlmllm.i18n import LANGUAGES, translate
from chatvlmllm.jsonable import json_extras
from chatvlmllm.models.families import families
from chatvlmllm.models.tasks import (
    FORMATTED_OCR_TRANSCRIBES,
    OCR_PROMPT,
    OCR_TRANSCRIBES,
    QUICK_PROMPTS,
    classify,
    is_extract_all_text,
    needs_understanding,
    offline_engine_for,
    offline_engine_names,
    offline_engines,
    quick_prompt_label,
)


def test_the_quick_prompts_and_the_cli_prompt_are_told_apart():
    assert QUICK_PROMPTS["Extract all text"] == OCR_PROMPT  # one wording for the app, `ocr` and the benchmark
    assert {label: classify(prompt) for label, prompt in QUICK_PROMPTS.items()} == {
        "Extract all text": Task.TRANSCRIBE,
        "Table → Markdown": Task.TABLE,
        "Key fields → JSON": Task.KEY_FIELDS,
        "Summarise": Task.SUMMARY,
    }


QUICK_TASKS = {
    "Extract all text": Task.TRANSCRIBE,
    "Table → Markdown": Task.TABLE,
    "Key fields → JSON": Task.KEY_FIELDS,
    "Summarise": Task.SUMMARY,
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_quick_prompts_are_recognised_in_every_language(language):
    # The app sends a quick prompt in the interface language: the classifier and the label lookup
    # (chat titles, verbatim display) must read each wording the same.
    sent = {label: translate(prompt, language) for label, prompt in QUICK_PROMPTS.items()}
    assert language == "en" or all(sent[label] != QUICK_PROMPTS[label] for label in sent)  # really translated
    assert {label: classify(prompt) for label, prompt in sent.items()} == QUICK_TASKS
    assert {label: quick_prompt_label(prompt) for label, prompt in sent.items()} == {label: label for label in sent}
    assert is_extract_all_text(sent["Extract all text"])


def test_russian_requests_name_the_same_tasks_as_english_ones():
    cases = {
        "Извлеки весь текст": Task.TRANSCRIBE,
        "Перепиши текст страницы": Task.TRANSCRIBE,
        "Прочитай чек": Task.TRANSCRIBE,
        "Преобразуй таблицу в Markdown": Task.TABLE,
        "Запиши формулу в LaTeX": Task.FORMULA,
        "Извлеки данные графика": Task.CHART,
        "Разметка страницы с рамками": Task.LAYOUT,
        "Ключевые поля в JSON": Task.KEY_FIELDS,
        "Извлеки реквизиты": Task.KEY_FIELDS,
        "Перескажи договор": Task.SUMMARY,
        "Вкратце, о чём он": Task.SUMMARY,
        "Какова итоговая сумма": Task.QUESTION,
        "Объясни таблицу": Task.QUESTION,  # explaining a table is a question about it, as in English
        "Извлеки дату": Task.QUESTION,  # a figure, not the page's text
        "Извлеки итог": Task.QUESTION,
    }
    assert {text: classify(text) for text in cases} == cases
    english = {"Explain the table": Task.QUESTION, "Extract the date": Task.QUESTION}
    assert {text: classify(text) for text in english} == english


def test_one_classifier_names_every_task():
    cases = {
        "": Task.TRANSCRIBE,
        "OCR this page": Task.TRANSCRIBE,
        "Convert to markdown": Task.TRANSCRIBE,
        "Распознай текст": Task.TRANSCRIBE,
        "Extract the table": Task.TABLE,
        "Write the formula as LaTeX": Task.FORMULA,
        "Give the chart's data": Task.CHART,
        "Parse the layout with bounding boxes": Task.LAYOUT,
        "Extract the key fields as JSON": Task.KEY_FIELDS,
        "Summarize the page": Task.SUMMARY,
        "What is the total?": Task.QUESTION,
        "Переведи текст": Task.QUESTION,
        "Extract the total": Task.QUESTION,  # a figure, not the page's text
    }
    assert {text: classify(text) for text in cases} == cases


def test_engines_differ_by_capability_not_by_classifier():
    # Formatted OCR (GOT's format mode, dots.ocr) writes tables; plain OCR cannot; neither reads fields.
    assert Task.TABLE in FORMATTED_OCR_TRANSCRIBES and Task.TABLE not in OCR_TRANSCRIBES
    key_fields = classify("Extract the key fields as JSON")
    assert key_fields not in FORMATTED_OCR_TRANSCRIBES and key_fields not in OCR_TRANSCRIBES
    assert needs_understanding(key_fields) and needs_understanding(Task.SUMMARY)
    assert not needs_understanding(Task.TABLE)


def test_the_offline_engines_come_from_the_family_registry():
    declared = [name for name, info in families().items() if info.backend == "classic"]
    assert offline_engine_names() == declared and {"ocr_auto", "rapidocr", "tesseract"} <= set(declared)
    # A fallback chain: the per-page chooser first, then the single engine that reads the language best.
    assert offline_engines("ru") == ["ocr_auto", "tesseract", "rapidocr"]
    assert offline_engines("en") == offline_engines(None) == ["ocr_auto", "rapidocr", "tesseract"]
    assert {offline_engine_for(language) for language in (None, "en", "ru")} == {"ocr_auto"}  # probes the script


def test_extras_keep_everything_json_including_dicts():
    class Opaque:
        pass

    extras = {
        "layout": {"elements": [{"box": (1, 2, 3, 4), "text": "TOTAL"}], "truncated": False},  # a dict value
        "lines": [{"text": "a", "box": [0, 0, 1, 1]}],
        "engine": "rapidocr",
        "seconds": 0.5,
        "note": None,
        "image": Opaque(),  # not JSON: left out
        "boxes": [Opaque()],  # a list with something that is not JSON: left out, not a crash later
        "by_key": {1: "x"},  # JSON object keys are strings
    }
    kept = json_extras(extras)
    assert set(kept) == {"layout", "lines", "engine", "seconds", "note"}
    assert json.loads(json.dumps(kept))["layout"]["elements"][0]["text"] == "TOTAL"


def test_chats_saved_with_the_former_extract_prompt_are_still_recognised():
    former = "Extract all the text in this document in reading order. Keep the line breaks; add nothing else."
    assert quick_prompt_label(former) == quick_prompt_label(OCR_PROMPT) == "Extract all text"
    assert is_extract_all_text(" " + OCR_PROMPT + "\n") and not is_extract_all_text("Extract the table")
    assert quick_prompt_label(QUICK_PROMPTS["Summarise"]) == "Summarise" and quick_prompt_label("hello") is None
