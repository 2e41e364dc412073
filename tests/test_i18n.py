"""The interface language (chatvlmllm.i18n): plural forms, which language, one language per context, lazy
strings, the compiled catalogue, and numbers, sizes and dates in the user's locale."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from datetime import UTC, datetime

import pytest
from babel import Locale

from chatvlmllm import i18n
from chatvlmllm.errors import DocumentError, UserError
from chatvlmllm.i18n import Message, _, lazy_gettext, lazy_message, lazy_plural, ngettext, use_language

# The CLI's page message: a real catalogue entry with three Russian forms (chatvlmllm/cli/ask_cmd.py).
PAGES_SINGULAR = "{name} has {count} page; --page {page} does not exist"
PAGES_PLURAL = "{name} has {count} pages; --page {page} does not exist"


def pages_message(count: int) -> str:
    return ngettext(PAGES_SINGULAR, PAGES_PLURAL, count).format(name="a.pdf", count=count, page=count + 1)


@pytest.mark.parametrize(
    ("count", "word"),
    [
        *[(1, "страница"), (2, "страницы"), (4, "страницы"), (5, "страниц"), (11, "страниц"), (12, "страниц")],
        *[(21, "страница"), (22, "страницы"), (25, "страниц"), (101, "страница"), (111, "страниц"), (0, "страниц")],
    ],
)
def test_russian_plurals_take_the_right_form(count, word):
    with use_language("ru"):
        assert pages_message(count) == f"a.pdf: {count} {word}, страницы --page {count + 1} нет"


def test_english_plurals_have_two_forms():
    with use_language("en"):
        assert pages_message(1) == "a.pdf has 1 page; --page 2 does not exist"
        assert pages_message(2) == "a.pdf has 2 pages; --page 3 does not exist"
        assert pages_message(0) == "a.pdf has 0 pages; --page 1 does not exist"


def test_the_russian_catalogue_plural_rule_is_cldr_s():
    # The catalogue's Plural-Forms (what gettext evaluates) against Babel's CLDR rule, for 0..1000.
    translations = i18n.translations("ru")
    cldr = Locale.parse("ru").plural_form
    forms = {"one": 0, "few": 1, "many": 2}
    assert all(translations.plural(n) == forms[cldr(n)] for n in range(1001))  # type: ignore[attr-defined]


def test_a_browser_tag_or_a_posix_locale_names_a_supported_language():
    assert i18n.negotiate(["ru-RU"]) == i18n.negotiate(["ru_RU.UTF-8"]) == i18n.negotiate(["RU"]) == "ru"
    assert i18n.negotiate(["de-DE", None, "", "en-GB"]) == "en"
    assert i18n.negotiate(["de-DE", "fr"]) is None and i18n.negotiate([]) is None
    assert i18n.negotiate(["sr_RS@latin"]) is None


def test_the_app_language_order(monkeypatch):
    choose = i18n.choose_language
    assert choose() == "en"  # nothing known: English
    assert choose(browser="ru-RU") == "ru"  # the browser's
    assert choose(remembered="en", browser="ru-RU") == "en"  # this browser chose before
    assert choose(chosen="ru", remembered="en", browser="en-US") == "ru"  # the switch, in this session
    assert choose(browser="de-DE") == "en"  # a language the app does not speak
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "ru")
    assert choose(chosen="en", remembered="en", browser="en-US") == "ru"  # forced
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "de")
    with pytest.raises(UserError, match=r"CHATVLMLLM_UI_LANG='de' is not a language of this app \(en, ru\)"):
        choose(browser="ru")


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"LANG": "ru_RU.UTF-8"}, "ru"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "ru_RU.UTF-8"}, "ru"),
        ({"LANG": "ru_RU.UTF-8", "LC_ALL": "en_US.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8", "LANGUAGE": "de:ru:en"}, "ru"),  # LANGUAGE: a list, most wanted first
        ({"LANG": "C.UTF-8", "LANGUAGE": "ru"}, "en"),  # the C locale ignores LANGUAGE (as GNU gettext)
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
        ({"LANG": "en_US.UTF-8", "CHATVLMLLM_UI_LANG": "ru"}, "ru"),
    ],
)
def test_the_terminal_language_follows_the_posix_variables(monkeypatch, variables, expected):
    monkeypatch.delenv("LANG", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert i18n.environment_language() == expected


def test_each_context_has_its_own_language():
    # Two browser sessions answered at once by one process: each thread reads its own language.
    barrier = threading.Barrier(2)
    seen: dict[str, str] = {}

    def session(language: str) -> None:
        i18n.set_language(language)
        barrier.wait(timeout=10)  # both have set theirs before either translates
        seen[language] = _("Upload a document")

    threads = [threading.Thread(target=session, args=(lang,)) for lang in ("ru", "en")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"ru": "Загрузите документ", "en": "Upload a document"}
    assert i18n.current_language() == "en"  # this thread was never set


def test_use_language_ends_with_its_block_and_a_source_fills_in():
    with use_language("ru"):
        assert _("Document") == "Документ"
        with use_language("en"):
            assert _("Document") == "Document"
        assert _("Document") == "Документ"
    assert _("Document") == "Document"
    previous = i18n.set_language_source(lambda: "ru")  # Streamlit's callbacks: the session's language
    try:
        assert _("Document") == "Документ"
        with use_language("en"):
            assert _("Document") == "Document"  # a language set here wins over the source
    finally:
        i18n.set_language_source(previous)


def test_a_lazy_string_reads_in_the_language_of_each_use():
    title = lazy_gettext("Document")  # a module constant: made once, at import
    with use_language("ru"):
        assert str(title) == "Документ" and f"{title}!" == "Документ!"
    with use_language("en"):
        assert str(title) == "Document"


def test_a_message_without_translation_stays_english():
    with use_language("ru"):
        assert _("A sentence nobody marked") == "A sentence nobody marked"


def test_a_missing_or_stale_mo_is_compiled_from_the_po(tmp_path, monkeypatch, caplog):
    # A fresh `pip install` without `make i18n`: the .po is there, the .mo is not.
    locale = tmp_path / "locale"
    shutil.copytree(i18n.LOCALE_DIR, locale, ignore=shutil.ignore_patterns("*.mo"))
    monkeypatch.setattr(i18n, "LOCALE_DIR", locale)
    i18n.translations.cache_clear()
    try:
        with use_language("ru"):
            assert _("Upload a document") == "Загрузите документ"
        assert "compiled in memory" in caplog.text
    finally:
        i18n.translations.cache_clear()


def test_numbers_sizes_and_dates_in_the_users_locale():
    with use_language("ru"):
        assert i18n.format_size(1.6e9) == "1,6 ГБ"
        assert i18n.format_size(50e6) == "50 МБ" and i18n.format_size(512) == "512 байт"
        assert i18n.format_number(12345.678, 1) == "12\xa0345,7"
        moment = datetime(2026, 12, 4, 15, 20)
        assert i18n.format_datetime(moment, now=datetime(2026, 12, 30)) == "4 дек., 15:20"
        assert i18n.format_datetime(moment, now=datetime(2027, 1, 2)) == "4 дек. 2026\u202fг., 15:20"
    assert i18n.format_size(1.6e9, "en") == "1.6 GB" and i18n.format_size(1, "en") == "1 byte"
    assert i18n.format_number(12345.678, 1, "en") == "12,345.7"
    assert i18n.format_datetime(datetime(2026, 12, 4, 15, 20), "en", now=datetime(2026, 1, 1)) == "Dec 4, 3:20\u202fPM"


def test_an_aware_moment_is_shown_in_local_time():
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Moscow"
    time.tzset()
    try:
        utc = datetime(2026, 12, 4, 12, 20, tzinfo=UTC)
        assert i18n.format_datetime(utc, "ru", now=datetime(2026, 12, 5)) == "4 дек., 15:20"
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_a_stored_message_is_english_and_reads_in_the_language_of_whoever_shows_it():
    # What the app caches or stores (a planner's reason, a document error) is a Message: English inside,
    # translated where it is shown, nested values too.
    reason = lazy_message("needs about {needed} {how}, more than the {total} {memory}", needed="3.2 GB",
                          how=lazy_message("in {dtype}", dtype="float32"), total="2 GB", memory="RAM")  # fmt: skip
    error = DocumentError(reason)
    with use_language("ru"):
        assert str(reason) == str(error) == "нужно около 3.2 GB в float32, больше, чем 2 GB RAM"
        assert reason.english == error.english == "needs about 3.2 GB in float32, more than the 2 GB RAM"
    assert str(error) == error.english  # English where no language is set (the server, the JSON)


@pytest.mark.parametrize(("count", "form"), [(1, "страница"), (3, "страницы"), (5, "страниц"), (21, "страница")])
def test_a_stored_counted_message_takes_the_russian_plural_form_where_it_is_shown(count, form):
    error = DocumentError(
        lazy_plural(
            "{name} has {count} page; the limit is {limit}. Split it and upload the part you need.",
            "{name} has {count} pages; the limit is {limit}. Split it and upload the part you need.",
            count,
            name="a.pdf",
            limit=0,
        )
    )
    with use_language("ru"):
        assert str(error).startswith(f"В a.pdf {count} {form}; предел — 0.")
    assert error.english.startswith(f"a.pdf has {count} page{'s' if count != 1 else ''}; the limit is 0.")


@pytest.mark.parametrize(
    ("singular", "plural", "forms"),
    [
        (
            "Unloaded {count} model; its memory is free.",
            "Unloaded {count} models; their memory is free.",
            ("Выгружена 1 модель", "Выгружено 3 модели", "Выгружено 5 моделей"),
        ),
        ("{count} message", "{count} messages", ("1 сообщение", "3 сообщения", "5 сообщений")),
        ("{count} CPU core", "{count} CPU cores", ("1 ядро CPU", "3 ядра CPU", "5 ядер CPU")),
        ("{count} item", "{count} items", ("1 документ", "3 документа", "5 документов")),
        ("Show all {count} chats", "Show all {count} chats", ("весь 1 чат", "все 3 чата", "все 5 чатов")),
        (
            "Resumed “{title}” ({count} turn)",
            "Resumed “{title}” ({count} turns)",
            ("(1 реплика)", "(3 реплики)", "(5 реплик)"),
        ),
        (
            "the first turn was not sent (context limit)",
            "the first {count} turns were not sent (context limit)",
            ("первая 1 реплика", "первые 3 реплики", "первые 5 реплик"),
        ),
        (
            "{document}, page {pages}",
            "{document}, pages {pages}",
            ("a.pdf, страница 1", "a.pdf, страницы 1", "a.pdf, страницы 1"),
        ),
    ],
)
def test_the_sweeps_plural_messages_take_the_russian_forms(singular, plural, forms):
    values = {"title": "t", "document": "a.pdf", "pages": "1"}
    with use_language("ru"):
        shown = [ngettext(singular, plural, count).format(count=count, **values) for count in (1, 3, 5)]
    assert all(form in text for form, text in zip(forms, shown, strict=True))


def test_a_message_kept_as_json_reads_as_before_in_every_language():
    # An attempt's reason is stored in a transcript as JSON beside its English: it must come back whole,
    # nested values and the counted form included.
    nested = lazy_message("needs about {needed} {how}, more than the {total} {memory}", needed="3.2 GB",
                          how=lazy_message("in {dtype}", dtype="float32"), total="2 GB", memory="RAM")  # fmt: skip
    counted = lazy_plural(PAGES_SINGULAR, PAGES_PLURAL, 3, name="a.pdf", page=4)
    for message in (nested, counted, lazy_message("the answer was empty")):
        again = Message.from_dict(json.loads(json.dumps(message.to_dict())))
        assert again == message
        with use_language("ru"):
            assert str(again) == str(message) and re.search("[а-яА-Я]", str(again))
        assert again.english == message.english


def test_a_message_with_a_path_is_kept_as_json_with_the_path_as_its_text(tmp_path):
    message = lazy_message("cannot read {path}", path=tmp_path / "a.pdf")
    again = Message.from_dict(json.loads(json.dumps(message.to_dict())))
    assert again.english == message.english == f"cannot read {tmp_path / 'a.pdf'}"
