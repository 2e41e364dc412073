"""The interface's language: one gettext catalogue managed with Babel, the language of this call,
and dates, numbers and sizes written the way that language writes them.

- `_("Upload a document")` translates into the current language; `ngettext("{count} page",
  "{count} pages", n).format(count=n)` picks the plural form (Russian has three); `lazy_gettext`
  for a module constant (translated each time it is used); `N_` only marks a string for extraction.
- The current language is a context variable: each Streamlit script run, each CLI call and each test
  sets its own (`use_language`). Never `gettext.install()`: one Streamlit process serves many browsers,
  each in its own language. A front end whose threads start without the variable (Streamlit runs
  widget callbacks on a fresh thread) gives a fallback with `set_language_source`.
- The catalogue: `chatvlmllm/locale/chatvlmllm.pot` and `locale/<lang>/LC_MESSAGES/chatvlmllm.po`,
  compiled to `.mo` by `make i18n` (and by `make run`/`make test`); docs/i18n.md is the guide.
"""

from __future__ import annotations

import gettext as _gettext
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_skeleton, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import LazyProxy
from babel.units import format_unit

from chatvlmllm.errors import UserError
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

DOMAIN = "chatvlmllm"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"  # the msgids are English: English needs no catalogue
LANGUAGES = ("en", "ru")  # every language the interface speaks (a catalogue each, except the source)
# Each language in its own name, as a language switch lists them.
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
# The locale names that mean "no language chosen" (POSIX): the source language.
_POSIX_LOCALES = frozenset({"C", "POSIX"})

_language: ContextVar[str | None] = ContextVar("chatvlmllm_language", default=None)
_language_source: Callable[[], str | None] | None = None

LazyString = LazyProxy  # what lazy_gettext returns: str() of it is the translation at that moment


# -- which language -------------------------------------------------------------------------------


def negotiate(tags: Iterable[str | None]) -> str | None:
    """The first supported language among `tags`, most wanted first: browser tags ("ru-RU"),
    POSIX locales ("ru_RU.UTF-8") or codes ("ru"); None when none is supported."""
    for tag in tags:
        primary = (tag or "").strip().split(".")[0].split("@")[0].replace("_", "-").split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    return None


def forced_language() -> str | None:
    """The language CHATVLMLLM_UI_LANG forces (None when unset); a code this app does not speak is a
    UserError naming the variable."""
    wanted = (settings().ui_lang or "").strip()
    if not wanted:
        return None
    found = negotiate([wanted])
    if found is None:
        raise UserError(f"CHATVLMLLM_UI_LANG={wanted!r} is not a language of this app ({', '.join(LANGUAGES)}).")
    return found


def environment_language() -> str:
    """The language of a terminal program: CHATVLMLLM_UI_LANG, else gettext's order (LANGUAGE, then the
    LC_MESSAGES locale from LC_ALL, LC_MESSAGES or LANG); the C/POSIX locale is the source language."""
    forced = forced_language()
    if forced is not None:
        return forced
    current = settings()
    locale = current.lc_all or current.lc_messages or current.lang
    if not locale or locale.split(".")[0] in _POSIX_LOCALES:
        return SOURCE_LANGUAGE  # GNU gettext ignores LANGUAGE in the C locale too
    return negotiate([*current.language_list.split(":"), locale]) or SOURCE_LANGUAGE


def choose_language(chosen: str | None = None, remembered: str | None = None, browser: str | None = None) -> str:
    """The app's language: CHATVLMLLM_UI_LANG, else the one chosen with the switch in this session, else
    the one remembered by this browser, else the browser's own, else the source language."""
    return forced_language() or negotiate([chosen, remembered, browser]) or SOURCE_LANGUAGE


def current_language() -> str:
    """The language of this call: `use_language`/`set_language` in this context, else the front end's
    source (`set_language_source`), else the source language."""
    language = _language.get()
    if language is None and _language_source is not None:
        language = _language_source()
    return language if language in LANGUAGES else SOURCE_LANGUAGE


def set_language(language: str) -> Token[str | None]:
    """Use `language` for the rest of this context (a Streamlit script run). Returns the token that
    undoes it; prefer `use_language` where a block has an end."""
    return _language.set(negotiate([language]) or SOURCE_LANGUAGE)


@contextmanager
def use_language(language: str) -> Iterator[str]:
    """`with use_language("ru"):` translates into Russian inside the block, in this context only."""
    token = set_language(language)
    try:
        yield _language.get() or SOURCE_LANGUAGE
    finally:
        _language.reset(token)


def set_language_source(source: Callable[[], str | None] | None) -> Callable[[], str | None] | None:
    """Where `current_language` looks when this context set none (Streamlit: the session's language,
    for the callbacks it runs before the page script). The source must be cheap and never raise.
    Returns the source it replaces."""
    global _language_source
    previous, _language_source = _language_source, source
    return previous


# -- translating ----------------------------------------------------------------------------------


def catalogue_path(language: str, suffix: str = ".po") -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalogue of `language` (the .mo that `make i18n` writes). A .mo that is missing or
    older than its .po (a fresh `pip install`, a .po just edited) is compiled from the .po in memory,
    with a warning, so the interface never shows a stale translation."""
    if language == SOURCE_LANGUAGE:
        return _gettext.NullTranslations()
    po, mo = catalogue_path(language), catalogue_path(language, ".mo")
    if not po.is_file():
        log.warning("no catalogue for %r at %s: the interface stays in %s", language, po, SOURCE_LANGUAGE)
        return _gettext.NullTranslations()
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as compiled:
            return _gettext.GNUTranslations(compiled)
    log.warning("%s is missing or older than its .po: compiled in memory (run `make i18n`)", mo)
    return _gettext.GNUTranslations(BytesIO(compile_catalogue(po)))


def compile_catalogue(po: Path) -> bytes:
    """The .mo bytes of a .po file, as `pybabel compile` writes them (fuzzy entries left out)."""
    with po.open("rb") as source:
        catalog = read_po(source)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    return compiled.getvalue()


def gettext(message: str) -> str:
    """`message` in the current language (itself when the catalogue has no translation)."""
    return translations(current_language()).gettext(message)


_ = gettext


def translate(message: str, language: str) -> str:
    """`message` in a given language, whatever the current one is (to recognise a text in every language)."""
    return translations(language).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of a counted message for `count` in the current language (Russian: 1 страница,
    2 страницы, 5 страниц); format the count in yourself: `ngettext(...).format(count=n)`."""
    return translations(current_language()).ngettext(singular, plural, count)


def N_(message: str) -> str:  # the gettext convention: extraction finds it by this name
    """Marks `message` for the catalogue without translating it (it is translated where it is shown)."""
    return message


def lazy_gettext(message: str) -> LazyString:
    """A module constant that reads in the language of each use: `str(MESSAGE)` (or an f-string, or
    `.format`) translates it then. Streamlit wants a real str: pass `str(MESSAGE)`."""
    return LazyProxy(gettext, message, enable_cache=False)


@dataclass(frozen=True)
class Message:
    """A message kept as its English text and named values, translated where it is shown: what the app
    stores or caches (a planner's reason, a note saved with an answer) stays English and reads in the
    language of whoever looks at it. A value that is itself a Message is translated along."""

    msgid: str
    values: tuple[tuple[str, object], ...] = ()
    plural: str | None = None  # a counted message (`lazy_plural`): its English plural and the count
    count: int = 1

    def render(self, language: str | None = None) -> str:
        """The message in `language` (by default the current one)."""
        language = language or current_language()
        if self.plural is None:
            translated = translate(self.msgid, language)
        else:
            translated = translations(language).ngettext(self.msgid, self.plural, self.count)
        if not self.values:  # a text without values may hold braces of its own (a model's note)
            return translated
        values = {name: value.render(language) if isinstance(value, Message) else value for name, value in self.values}
        return translated.format(**values)

    @property
    def english(self) -> str:
        return self.render(SOURCE_LANGUAGE)

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON (stored beside its English, so a transcript shows it in any language)."""
        values = {name: _stored_value(value) for name, value in self.values}
        stored: dict[str, Any] = {"msgid": self.msgid, "values": values}
        if self.plural is not None:
            stored |= {"plural": self.plural, "count": self.count}
        return stored

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Message:
        """`to_dict`'s message back (a value that is a stored message is one again)."""
        values = tuple(
            (str(name), cls.from_dict(value) if isinstance(value, Mapping) else value)
            for name, value in dict(stored.get("values") or {}).items()
        )
        plural = stored.get("plural")
        return cls(
            str(stored["msgid"]), values, str(plural) if plural is not None else None, int(stored.get("count", 1))
        )


def _stored_value(value: object) -> object:
    """A message's value as JSON keeps it: a message as its dict, a number as itself (a format spec such as
    `{size:.1f}` needs it), anything else (a path) as the text it is formatted to."""
    if isinstance(value, Message):
        return value.to_dict()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def lazy_message(msgid: str, **values: object) -> Message:
    """`lazy_message("needs about {size} GB", size=3.2)`: marked for the catalogue (extracted by this
    name), formatted with `values` and translated each time it is shown (`str()`, `.render(language)`)."""
    return Message(msgid, tuple(values.items()))


def lazy_plural(singular: str, plural: str, count: int, **values: object) -> Message:
    """`lazy_message` for a counted message: the plural form is chosen for `count` in the language it is
    shown in (Russian has three); `count` is also a value of the message."""
    return Message(singular, tuple({"count": count, **values}.items()), plural, count)


def english(text: str | Message) -> str:
    """The English of a text that may be a Message (what the app stores)."""
    return text.english if isinstance(text, Message) else text


# -- writing numbers, sizes and dates -------------------------------------------------------------


def babel_locale(language: str | None = None) -> Locale:
    return Locale.parse(language or current_language())


def format_number(value: float, decimals: int | None = None, language: str | None = None) -> str:
    """12 345,7 in Russian, 12,345.7 in English; `decimals` fixes the digits after the point."""
    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=babel_locale(language))


_SIZE_UNITS = (
    (1e12, "digital-terabyte"),
    (1e9, "digital-gigabyte"),
    (1e6, "digital-megabyte"),
    (1e3, "digital-kilobyte"),
)


def format_size(num_bytes: float, language: str | None = None) -> str:
    """A size in decimal units with at most one decimal: "1,6 ГБ", "50 MB", "512 bytes"."""
    locale = babel_locale(language)
    for scale, unit in _SIZE_UNITS:
        if abs(num_bytes) >= scale:
            return format_unit(num_bytes / scale, unit, length="short", format="#,##0.#", locale=locale)
    return format_unit(num_bytes, "digital-byte", length="long", format="#,##0", locale=locale)


def format_datetime(moment: datetime, language: str | None = None, now: datetime | None = None) -> str:
    """Day, month and time, the year only when it is not this year's: "4 дек., 15:20", "Dec 4, 3:20 PM",
    "4 дек. 2024 г., 15:20". An aware moment is shown in this machine's time zone."""
    locale = babel_locale(language)
    local = moment.astimezone() if moment.tzinfo is not None else moment
    this_year = (now or datetime.now(local.tzinfo)).year
    date = format_skeleton("MMMd" if local.year == this_year else "yMMMd", local, locale=locale)
    time = format_time(local, "short", locale=locale)
    pattern = str(get_datetime_format("medium", locale=locale))  # "{1}, {0}": date, then time
    return pattern.replace("'", "").replace("{1}", date).replace("{0}", time)
