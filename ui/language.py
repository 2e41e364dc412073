"""The interface language of this browser session, and the sidebar switch that changes it.

Which language (`chatvlmllm.i18n.choose_language`): CHATVLMLLM_UI_LANG forces one; else the one chosen
with the switch in this session; else the one this browser remembered (a cookie the switch writes, read
back through `st.context.cookies` on the next visit: it survives a reload and a new tab); else the
browser's own (`st.context.locale`); else English.

`apply()` runs first in every script run (app.py): it sets the language of the run's thread and keeps it
in the session, where `chatvlmllm.i18n` finds it for the widget callbacks Streamlit runs on a fresh thread
before the page script.
"""

from __future__ import annotations

import json
import logging

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from chatvlmllm import i18n
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import _

log = logging.getLogger(__name__)

COOKIE = "chatvlmllm_ui_lang"
COOKIE_DAYS = 365
CURRENT_KEY = "ui_language"  # this run's language, for callbacks (i18n's language source)
CHOSEN_KEY = "ui_language_chosen"  # set only by the switch: the user's own choice in this session
SWITCH_KEY = "ui_language_switch"
DOCUMENT_LANGUAGE_KEY = "language"  # the sidebar's "Document language" (ui.sidebar.model_picker)
# The sidebar's pickers whose choices are worded in the interface language (ui.sidebar.model_picker). The page
# keeps showing a selectbox's old wording when only its words change, not its value (streamlit PR #13788):
# the switch sets their values again, which makes the page redraw the choice in the new language.
REWORDED_PICKERS = ("attention", "model", DOCUMENT_LANGUAGE_KEY)
PAGE_PICKER = "page_picker"  # ui.document_view's page picker: one key per chat and document, each reworded too
# The document language that goes with an interface language: a Russian interface expects Russian
# documents; for English, "not set" (offline OCR probes each page's script, Latin is its default anyway).
DOCUMENT_LANGUAGE_FOR = {"ru": "ru"}
DOCUMENT_LANGUAGE_UNSET = "auto"


def apply() -> str:
    """Choose this run's language, use it on this thread and remember it in the session; returns it."""
    try:
        language = i18n.choose_language(
            st.session_state.get(CHOSEN_KEY), st.context.cookies.get(COOKIE), st.context.locale
        )
    except UserError as exc:  # a CHATVLMLLM_UI_LANG this app does not speak: say so, carry on
        st.error(str(exc))
        language = i18n.negotiate([st.session_state.get(CHOSEN_KEY), st.context.locale]) or i18n.SOURCE_LANGUAGE
    i18n.set_language(language)
    st.session_state[CURRENT_KEY] = language
    i18n.set_language_source(session_language)  # for the next run's callbacks (idempotent)
    # The page's own choice of document language wins; until it makes one, it follows the interface.
    st.session_state.setdefault(DOCUMENT_LANGUAGE_KEY, document_language_for(language))
    return language


def document_language_for(language: str) -> str:
    return DOCUMENT_LANGUAGE_FOR.get(language, DOCUMENT_LANGUAGE_UNSET)


def session_language() -> str | None:
    """This session's language, for code that runs before `apply()` in a run (widget callbacks);
    None outside a Streamlit script thread (the CLI, the server, worker threads)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    value = st.session_state.get(CURRENT_KEY)
    return value if isinstance(value, str) else None


def switch() -> None:
    """The language switch (each language in its own name); disabled when CHATVLMLLM_UI_LANG forces one."""
    current = i18n.current_language()
    try:
        forced = i18n.forced_language() is not None
    except UserError:
        forced = False
    st.selectbox(
        _("Language"),
        i18n.LANGUAGES,
        index=i18n.LANGUAGES.index(current),
        format_func=i18n.LANGUAGE_NAMES.__getitem__,
        key=SWITCH_KEY,
        on_change=_chosen,
        disabled=forced,
        help=_("Set by CHATVLMLLM_UI_LANG on the server.") if forced else _("Remembered in this browser."),
    )
    if st.session_state.get(CHOSEN_KEY):
        _remember(current)


def _chosen() -> None:
    """The switch moved: use that language from now on, and carry the document language along unless the
    page chose one of its own."""
    before = st.session_state.get(CURRENT_KEY, i18n.SOURCE_LANGUAGE)
    after = st.session_state[SWITCH_KEY]
    st.session_state[CHOSEN_KEY] = after
    if st.session_state.get(DOCUMENT_LANGUAGE_KEY, document_language_for(before)) == document_language_for(before):
        st.session_state[DOCUMENT_LANGUAGE_KEY] = document_language_for(after)
    for key in list(st.session_state):
        if key in REWORDED_PICKERS or str(key).startswith(f"{PAGE_PICKER}_"):
            st.session_state[key] = st.session_state[key]


def _remember(language: str) -> None:
    """Write the chosen language to a cookie of this site, read back by the next visit's `apply()`."""
    # Our own constant script; the value is one of i18n.LANGUAGES (no user text), quoted as JSON anyway.
    cookie = f"{COOKIE}={language}; path=/; max-age={COOKIE_DAYS * 86400}; SameSite=Lax"
    st.html(f"<script>document.cookie = {json.dumps(cookie)};</script>", unsafe_allow_javascript=True)
