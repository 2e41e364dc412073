"""Process-wide resources (st.cache_resource) and this browser session's chat.

The hardware probe, the catalog, the model statuses and the engine cache are shared by
every session and survive reruns: clicking a widget never re-probes the GPU or reloads a
model. The chat in use lives in st.session_state and its id in the URL (`?chat=...`), so
a browser reload opens the same chat from the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from chatvlmllm.cache import EngineCache, default_cache
from chatvlmllm.catalog import BUILTIN_MODELS, ModelSpec, load_catalog, models_file
from chatvlmllm.chat import ChatSession
from chatvlmllm.documents import safe_name
from chatvlmllm.errors import UserError
from chatvlmllm.hardware import HardwareProfile, probe
from chatvlmllm.selection import ModelStatus, default_model, model_status
from chatvlmllm.store import ChatStore, data_dir

T = TypeVar("T")
CHAT_KEY = "chat_session"
FLASH_KEY = "flash_messages"


@st.cache_resource(show_spinner="Probing the hardware…")
def hardware_profile() -> HardwareProfile:
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


@st.cache_resource(show_spinner="Checking which models can run here…", ttl=120)
def statuses(version: str) -> dict[str, ModelStatus]:
    """Planner status of every catalog model on this machine (cached: it looks at disk and network)."""
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


@st.cache_resource(show_spinner=False)
def _store(path: str) -> ChatStore | str:
    try:
        return ChatStore(path)
    except UserError as exc:
        return str(exc)


def chat_store() -> ChatStore | None:
    """The SQLite store, or None (with a flash message) when the data dir is unusable."""
    store = _store(str(data_dir() / "chats.sqlite3"))
    if isinstance(store, str):
        flash("error", f"{store} Chats are not being saved.")
        return None
    return store


# -- the chat in this browser session ---------------------------------------
def chat_session() -> ChatSession:
    if CHAT_KEY not in st.session_state:
        st.session_state[CHAT_KEY] = _initial_session()
    return st.session_state[CHAT_KEY]


def _initial_session() -> ChatSession:
    """The chat named in the URL, else the most recent one, else a new one."""
    store = chat_store()
    if store is None:
        return ChatSession()
    wanted = st.query_params.get("chat")
    candidates = ([wanted] if wanted else []) + [s.id for s in store.list_sessions()[:1]]
    for session_id in candidates:
        if store.exists(session_id):
            return _open(store, session_id)
    return ChatSession(store=store)


def _open(store: ChatStore, session_id: str) -> ChatSession:
    try:
        return ChatSession.open(store, session_id)
    except UserError as exc:
        flash("error", str(exc))
        return ChatSession(store=store)


def switch_to(session_id: str) -> None:
    store = chat_store()
    if store is None or session_id == chat_session().id:
        return
    if not store.exists(session_id):
        flash("error", "That chat no longer exists (deleted in another tab?).")
        return
    st.session_state[CHAT_KEY] = _open(store, session_id)


def new_chat() -> None:
    st.session_state[CHAT_KEY] = ChatSession(store=chat_store())


def delete_current() -> None:
    session = chat_session()
    store = chat_store()
    if store is not None and session.saved:
        store.delete(session.id)
        flash("success", f"Deleted “{session.conversation.title}”.")
    remaining = store.list_sessions() if store is not None else []
    st.session_state[CHAT_KEY] = _open(store, remaining[0].id) if remaining else ChatSession(store=store)


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
    for kind, text in st.session_state.pop(FLASH_KEY, []):
        {"error": st.error, "success": st.success, "info": st.info, "warning": st.warning}[kind](text)


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
        except UserError as exc:
            shown = safe_name(uploaded.name)  # control characters in a file name are never echoed raw
            message = str(exc) if shown in str(exc) else f"{shown}: {exc}"
            st.session_state[error_key] = (uploaded.file_id, message)
    failed = st.session_state.get(error_key)
    if failed and failed[0] == uploaded.file_id:
        st.error(failed[1])
    return None
