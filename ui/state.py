"""Process-wide resources (st.cache_resource) and this browser session's chat.

The hardware probe, the catalog, the model statuses and the engine cache are shared by
every session and survive reruns: clicking a widget never re-probes the GPU or reloads a
model. The chat in use lives in st.session_state and its id in the URL (`?chat=...`), so
a browser reload opens the same chat from the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from chatvlmllm.chat.engine_cache import EngineCache, default_cache
from chatvlmllm.chat.router import first_ready, planned_chain
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.chat.store import ChatStore, SessionInfo, StoreError
from chatvlmllm.documents.loading import safe_name
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import _, current_language
from chatvlmllm.models.catalog import BUILTIN_MODELS, ModelSpec, load_catalog, models_file
from chatvlmllm.models.choice import ModelStatus, default_model, model_status
from chatvlmllm.models.hardware import HardwareProfile, probe
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CHAT_KEY = "chat_session"
FLASH_KEY = "flash_messages"
NOTICE_KEY = "store_notice_shown"


def hardware_profile() -> HardwareProfile:
    # A spinner of our own: the cache's would be worded once, in English (st.spinner waits 0.5 s to show).
    with st.spinner(_("Probing the hardware…")):
        return _hardware_profile()


@st.cache_resource(show_spinner=False)
def _hardware_profile() -> HardwareProfile:
    return probe()


@st.cache_resource(show_spinner=False)
def engine_cache() -> EngineCache:
    """The process-wide engine cache (the CLI and server share the same one)."""
    return default_cache()


@dataclass(frozen=True)
class CatalogState:
    models: dict[str, ModelSpec]
    version: str  # changes when the models file changes
    error: str | None = None  # a broken models file: built-ins only, with the reason


def catalog() -> CatalogState:
    """The catalog, reloaded only when the models file changes (edits apply without a restart)."""
    path = models_file()
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    return _catalog(str(path), stamp)


@st.cache_resource(show_spinner=False)
def _catalog(path: str, stamp: int) -> CatalogState:
    version = f"{path}@{stamp}"
    try:
        return CatalogState(load_catalog(), version)
    except UserError as exc:
        return CatalogState({spec.key: spec for spec in BUILTIN_MODELS}, version, str(exc))


def statuses(version: str) -> dict[str, ModelStatus]:
    """Planner status of every catalog model on this machine, its reasons in this session's language."""
    with st.spinner(_("Checking which models can run here…")):
        return _statuses(version, current_language())


@st.cache_resource(show_spinner=False, ttl=120)
def _statuses(version: str, language: str) -> dict[str, ModelStatus]:
    """Cached per language (the reasons are written in it): it looks at disk and network."""
    hw = hardware_profile()
    return {key: model_status(spec, hw) for key, spec in catalog().models.items()}


@st.cache_resource(show_spinner=False, ttl=120)
def initial_model(version: str) -> tuple[str, str, str | None]:
    """(model key, why, problem): the planner's default for this machine."""
    models = catalog().models
    try:
        key, why = default_model(hardware_profile(), models, statuses=statuses(version))
    except UserError as exc:
        return next(iter(models)), "", str(exc)
    return key, why, None


# Stands for "a question" when choosing who answers before one is asked (chatvlmllm.models.tasks.classify).
ANY_QUESTION = "What does this document say?"


@st.cache_resource(show_spinner=False, ttl=120)
def answering_model(version: str, chosen: str, fallback: bool, language: str | None) -> str:
    """The model that will really answer the next question: the chosen one when it is ready here, else the
    first ready model of its fallback chain (the router skips the others at once); the quick prompts, the
    input's placeholder and the page's explanation follow it."""
    models = catalog().models
    ready = statuses(version)
    chain = planned_chain(ANY_QUESTION, models[chosen], hardware_profile(), models, fallback, language)
    found = first_ready(chain, lambda key: key in ready and ready[key].usable_now)
    return found.key if found is not None else chosen


@st.cache_resource(show_spinner=False)
def _store(path: str) -> ChatStore | str:
    try:
        return ChatStore(path)
    except UserError as exc:
        return str(exc)


def chat_store() -> ChatStore | None:
    """The SQLite store, or None (with a flash message) when the data dir is unusable."""
    store = _store(str(settings().database_path))
    if isinstance(store, str):
        flash("error", _("{problem} Chats are not being saved.").format(problem=store))
        return None
    if store.notice and not st.session_state.get(NOTICE_KEY):  # a damaged file set aside at start: say so once
        st.session_state[NOTICE_KEY] = True
        flash("warning", store.notice)
    return store


# -- the chat in this browser session ---------------------------------------
def chat_session() -> ChatSession:
    if CHAT_KEY not in st.session_state:
        st.session_state[CHAT_KEY] = _initial_session()
    return st.session_state[CHAT_KEY]


def _initial_session() -> ChatSession:
    """The chat named in the URL (a reload, a shared link), else a new one.

    A new tab never opens another chat by itself: that chat may be in use in another
    session. The empty chat offers "Continue your last chat" instead (see last_chat).
    """
    store = chat_store()
    if store is None:
        return ChatSession()
    wanted = st.query_params.get("chat")
    if not wanted:
        return ChatSession(store=store)
    try:
        found = store.exists(wanted, quiet=False)
    except StoreError as exc:  # the history cannot be read: the chat may well exist
        flash("warning", _("{problem} That chat cannot be opened now; this is a new chat.").format(problem=exc))
        return ChatSession(store=store)
    if found:
        return _open(store, wanted)
    flash("warning", _("That chat no longer exists (deleted?); this is a new chat."))
    return ChatSession(store=store)


def _open(store: ChatStore, session_id: str) -> ChatSession:
    try:
        return ChatSession.open(store, session_id)
    except UserError as exc:  # StoreError included: a broken chat opens as a new one, with the reason
        flash("error", _("That chat cannot be opened: {problem}").format(problem=exc))
        return ChatSession(store=store)
    except Exception as exc:  # stored data this version cannot read: never a page that fails to load
        log.exception("cannot open chat %s", session_id)
        flash("error", _("That chat cannot be opened ({error}); this is a new chat.").format(error=type(exc).__name__))
        return ChatSession(store=store)


def saved_chats(store: ChatStore | None, warn: bool = True) -> list[SessionInfo]:
    """Every saved chat, most recent first; none (with a warning, where `warn`) when the store cannot be read."""
    if store is None:
        return []
    chats = store.list_sessions()  # empty, with `store.fault` set, when the history cannot be read
    if warn and not chats and store.fault is not None:
        st.warning(_("{problem} Saved chats cannot be listed right now.").format(problem=store.fault))
    return chats


def last_chat(session: ChatSession) -> SessionInfo | None:
    """The most recently used saved chat other than this one (for "Continue your last chat"); the chat
    list says it when the history cannot be read, so this says nothing."""
    return next((info for info in saved_chats(chat_store(), warn=False) if info.id != session.id), None)


def switch_to(session_id: str) -> None:
    store = chat_store()
    if store is None or session_id == chat_session().id:
        return
    try:
        exists = store.exists(session_id)
    except StoreError as exc:
        flash("warning", _("{problem} That chat cannot be opened right now.").format(problem=exc))
        return
    if not exists:
        flash("error", _("That chat no longer exists (deleted in another tab?)."))
        return
    st.session_state[CHAT_KEY] = _open(store, session_id)


def reopen(session_id: str) -> None:
    """Read this chat again from the store (another tab added to it)."""
    store = chat_store()
    if store is not None:
        st.session_state[CHAT_KEY] = _open(store, session_id)


def new_chat() -> None:
    st.session_state[CHAT_KEY] = ChatSession(store=chat_store())


def delete_current() -> None:
    """Delete this chat (the user confirmed) and start a new one: never open someone else's chat."""
    session = chat_session()
    store = chat_store()
    if store is not None and session.saved:
        try:
            store.delete(session.id)
        except StoreError as exc:
            flash("warning", _("{problem} The chat was not deleted.").format(problem=exc))
            return
        flash("success", _("Deleted “{title}”.").format(title=session.conversation.title))
    st.session_state[CHAT_KEY] = ChatSession(store=store)


def widget_key(prefix: str, *parts: object) -> str:
    """A widget key that changes with the widget's options (see the chat and document pickers)."""
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:12]
    return f"{prefix}_{digest}"


def set_session(session: ChatSession) -> None:
    st.session_state[CHAT_KEY] = session


def sync_url(session: ChatSession) -> None:
    """Keep `?chat=<id>` pointing at the chat in use, so a reload reopens it."""
    current = st.query_params.get("chat")
    if session.saved and current != session.id:
        st.query_params["chat"] = session.id
    elif not session.saved and current is not None:
        del st.query_params["chat"]


# -- messages that must survive a rerun (set in callbacks) -----------------
def flash(kind: str, text: str) -> None:
    messages = st.session_state.setdefault(FLASH_KEY, [])
    if (kind, text) not in messages:
        messages.append((kind, text))


def show_flashes() -> None:
    """Errors and warnings at the top of the page; confirmations as a toast (seen wherever one has scrolled)."""
    for kind, text in st.session_state.pop(FLASH_KEY, []):
        if kind == "success":
            st.toast(text, icon=":material/check_circle:")
        else:
            {"error": st.error, "info": st.info, "warning": st.warning}[kind](text)


def handle_upload(uploaded: Any, slot: str, load: Callable[[Any], T]) -> T | None:
    """Run `load(uploaded)` once per uploaded file; a UserError shows as st.error while that file stays.

    Streamlit keeps the file in the widget across reruns: without the file id check the
    same upload would be processed again on every click.
    """
    if uploaded is None:
        return None
    done_key, error_key = f"{slot}_done", f"{slot}_error"
    if st.session_state.get(done_key) != uploaded.file_id:
        st.session_state[done_key] = uploaded.file_id
        st.session_state.pop(error_key, None)
        try:
            return load(uploaded)
        except UserError as exc:  # StoreError too: the chat goes on, the file is not saved
            shown = safe_name(uploaded.name)  # control characters in a file name are never echoed raw
            message = str(exc) if shown in str(exc) else _("{name}: {problem}").format(name=shown, problem=exc)
            st.session_state[error_key] = (uploaded.file_id, message)
    failed = st.session_state.get(error_key)
    if failed and failed[0] == uploaded.file_id:
        st.error(failed[1])
    return None
