"""Sidebar: model picker and settings, what is running, the chat list and transcripts."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from chatvlmllm.chat.archive import MAX_ARCHIVE_MB, missing_documents, missing_note, to_archive
from chatvlmllm.chat.engine_cache import EngineCache, LoadedEngine
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import SessionInfo
from chatvlmllm.decisions import Readiness
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import format_datetime
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.choice import ModelStatus
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.planner import ATTENTION_CHOICES, plan_load
from chatvlmllm.models.tasks import is_offline_engine, offline_engine_for
from ui import state, text_view

STATUS_ICONS: dict[str, str] = {
    Readiness.READY: ":material/check_circle:",
    Readiness.NEEDS_DOWNLOAD: ":material/download:",
    Readiness.WONT_FIT: ":material/block:",
    Readiness.INCOMPATIBLE: ":material/error:",
    Readiness.UNAVAILABLE: ":material/cloud_off:",
}
MAX_NEW_TOKENS_LIMIT = 8192
LANGUAGES = {"auto": "Not set", "en": "English / Latin script", "ru": "Russian (Cyrillic)"}


def status_label(key: str, status: ModelStatus | None) -> str:
    """ "key — ready here" or "key — needs set-up: needs download" (ready ones are listed first)."""
    if status is None:
        return key
    if status.status == Readiness.READY:
        return f"{key} — ready here"
    return f"{key} — needs set-up: {status.status}"


def picker_order(keys: list[str], statuses: dict[str, ModelStatus]) -> list[str]:
    """Ready here first, then the ones that need set-up, each group in catalog order."""
    ready = [k for k in keys if (s := statuses.get(k)) is not None and s.status == Readiness.READY]
    return ready + [k for k in keys if k not in ready]


def model_picker(
    models: dict[str, ModelSpec], statuses: dict[str, ModelStatus], default_key: str, hw: HardwareProfile
) -> AskOptions:
    """The model, attention and generation settings for the next answer."""
    st.header("Model")
    language = _language_picker()
    _preselect_model(models, default_key, language)
    key = _model_select(models, statuses)
    attention = st.selectbox(
        "Attention",
        ATTENTION_CHOICES,
        key="attention",
        help="auto lets the planner choose (flash_attention_2 where it really runs, else sdpa, else eager).",
    )
    options = _generation_settings(key, attention, language)
    plan = plan_load(hw, models[key], options.overrides())
    reason = (plan.why_not() or "").rstrip(".")
    status = statuses.get(key)
    if not plan.runnable and (status is None or reason != status.reason.rstrip(".")):  # not said just above
        st.warning(f"{key} cannot run here with these settings ({reason}).")
    return options


def _language_picker() -> str | None:
    """The document's language, None when not set."""
    chosen_language = st.selectbox(
        "Document language",
        tuple(LANGUAGES),
        format_func=lambda code: LANGUAGES[code],
        key="language",
        help="Offline OCR engines differ by script: Tesseract reads Cyrillic, RapidOCR's bundled models do not.",
    )
    return None if chosen_language == "auto" else chosen_language


def _preselect_model(models: dict[str, ModelSpec], default_key: str, language: str | None) -> None:
    """Put the default in the picker until the user chooses; an offline default follows the language."""
    keys = list(models)
    if st.session_state.get("model") not in keys:  # first run, or the catalog changed under us
        st.session_state["model"] = default_key if default_key in keys else keys[0]
        st.session_state["model_chosen"] = False
    if (
        not st.session_state.get("model_chosen")
        and default_key in models
        and is_offline_engine(models[default_key].family)
    ):
        # No VLM here and the user has not picked a model: the offline default follows the language.
        best = offline_engine_for(language)
        if best in keys:
            st.session_state["model"] = best


def _model_select(models: dict[str, ModelSpec], statuses: dict[str, ModelStatus]) -> str:
    """The model picker, ready ones first, with the chosen one's description and what it still needs."""
    key = st.selectbox(
        "Model",
        picker_order(list(models), statuses),
        key="model",
        on_change=lambda: st.session_state.update(model_chosen=True),
        format_func=lambda k: status_label(k, statuses.get(k)),
        help="Ready here: runs on this machine now. Needs set-up: the reason is shown below the picker.",
    )
    status = statuses.get(key)
    spec = models[key]
    if spec.description:
        st.caption(spec.description)
    if status is not None and status.status != Readiness.READY:
        st.caption(f"{STATUS_ICONS.get(status.status, '')} {status.reason}")
    return key


def _generation_settings(key: str, attention: str, language: str | None) -> AskOptions:
    """The expander's generation settings, with the model, attention and language chosen above."""
    with st.expander("Generation settings"):
        max_new_tokens = st.number_input(
            "Max new tokens",
            min_value=1,
            max_value=MAX_NEW_TOKENS_LIMIT,
            value=None,
            step=64,
            key="max_new_tokens",
            placeholder="model default",
            help="Empty: 1024, and whole-page transcriptions get the model's own (GOT-OCR 4096, dots.ocr 8192). "
            "A number you set is used as is.",
        )
        temperature = st.slider("Temperature", 0.0, 1.5, 0.0, 0.05, key="temperature", help="0 = greedy (repeatable)")
        repetition_guard = st.checkbox(
            "Stop answers that loop", value=True, key="repetition_guard", help="Ends an answer that repeats itself."
        )
        fallback = st.checkbox(
            "Fall back to other models", value=True, key="fallback", help="Try the next model when this one fails."
        )
    return AskOptions(
        model=key,
        attention=attention,
        max_new_tokens=int(max_new_tokens) if max_new_tokens is not None else None,
        temperature=float(temperature),
        repetition_guard=repetition_guard,
        fallback=fallback,
        language=language,
    )


def _unload(cache: EngineCache) -> None:
    count = cache.unload()
    state.flash("success", f"Unloaded {count} model(s); their memory is free.")


def runtime_panel(
    session: ChatSession, options: AskOptions, spec: ModelSpec, hw: HardwareProfile, cache: EngineCache, details: bool
) -> None:
    """What the next question runs on; with details, the plan and the last answer's figures."""
    st.header("Running")
    plan = plan_load(hw, spec, options.overrides())
    loaded = cache.loaded()
    key = cache.key_for(spec, plan)
    entry = next((e for e in loaded if e.key == key), None)  # loaded with exactly these settings
    same_model = [e for e in loaded if e.model == spec.key and e.key != key]
    model_line = f"**Model:** `{spec.key}`"
    if not plan.runnable:
        model_line += " — cannot run with these settings" + (" (the fallback answers)" if options.fallback else "")
    elif entry is not None:
        model_line += f" — loaded in {entry.load_s:.1f} s"
        if entry.memory_mb:
            model_line += f", {entry.memory_mb:,.0f} MB"
    elif same_model:
        model_line += f" — loaded with {same_model[0].plan.attention}; these settings load it again"
    else:
        model_line += " — loads on the first question"
    st.markdown(model_line)
    if plan.runnable and plan.attention != "n/a":  # what is shown is what will run
        st.caption(f"Attention: {plan.attention} · dtype: {plan.dtype} · device: {plan.device}")
    if hw.device == "cuda":
        vram = f"{hw.vram_total_gb:.1f} GB VRAM" if hw.vram_total_gb else "VRAM unknown"
        st.caption(f"GPU: {hw.gpu_name} · {vram} · sm_{hw.capability_str}")
    else:
        st.caption(f"No GPU found: running on the {hw.device.upper()} ({hw.cpu_count} cores)")
    last = session.conversation.last_answer
    if details and last is not None and last.metrics:
        st.caption("Last answer: " + text_view.caption(last, details=True))
    others = [e for e in loaded if e.key != key]
    if others:  # every loaded model keeps its memory until unloaded
        listed = ", ".join(e.model + (f" ({', '.join(_loaded_facts(e))})" if _loaded_facts(e) else "") for e in others)
        st.caption(f"Also loaded: {listed}")
    st.button(
        "Unload models",
        key="unload_models",
        on_click=_unload,
        args=(cache,),
        disabled=not loaded,
        help="Free the memory of every loaded model; the next question loads again.",
    )


CHATS_SHOWN = 15


def chat_label(info: SessionInfo) -> str:
    return f"{info.title} · {_when(info.updated_at)}"


def _when(iso: str) -> str:
    """ "4 дек., 15:20" / "Dec 4, 3:20 PM" in local time and the interface language; the stored text when it
    is not a date."""
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return str(iso)[:16]
    return format_datetime(moment)


def _loaded_facts(entry: LoadedEngine) -> list[str]:
    facts = [entry.plan.attention] if entry.plan.attention != "n/a" else []
    return facts + ([f"{entry.memory_mb:,.0f} MB"] if entry.memory_mb else [])


def chats_panel(session: ChatSession) -> None:
    """New chat, the saved chats (one button per chat id: labels may repeat), rename, delete."""
    st.header("Chats")
    store = state.chat_store()
    st.button("New chat", icon=":material/add:", on_click=state.new_chat, key="new_chat")
    saved = state.saved_chats(store)
    show_all = len(saved) > CHATS_SHOWN and st.toggle(f"Show all {len(saved)} chats", key="show_all_chats")
    with st.container(key="chat_list"):
        for info in saved if show_all else saved[:CHATS_SHOWN]:
            current = info.id == session.id
            st.button(
                chat_label(info),
                key=f"open_chat_{info.id}",
                type="primary" if current else "secondary",
                on_click=state.switch_to,
                args=(info.id,),
                width="stretch",
                help=f"{info.turn_count} messages" + (" (open now)" if current else ""),
            )
    if session.saved:
        # The title is part of the key: a title set elsewhere (first question) shows at once.
        rename_key = f"rename_{session.id}_{session.conversation.title}"
        st.text_input(
            "Name", value=session.conversation.title, key=rename_key, on_change=_rename, args=(session, rename_key)
        )
        with st.popover("Delete this chat", icon=":material/delete:", key="delete_chat"):
            st.markdown(f"Delete “{session.conversation.title}” and its documents? This cannot be undone.")
            st.button("Delete", type="primary", key="delete_chat_confirm", on_click=state.delete_current)
    if store is not None:
        st.caption(f"Saved in {store.path}")


def _rename(session: ChatSession, key: str) -> None:
    try:
        session.rename(st.session_state[key])
    except UserError as exc:  # StoreError included: "not saved", never a traceback
        state.flash("error", str(exc))


def transcript_panel(session: ChatSession, answering: bool = False) -> None:
    """Download the chat (Markdown, JSON, CSV, or a .zip with its documents) or resume a downloaded one.
    `answering`: the last question's answer is still being written (not marked as not answered)."""
    st.header("Transcript")
    conversation = session.conversation
    stem = "chat-" + conversation.id[:8]
    empty = not conversation.turns
    with st.container(horizontal=True):
        st.download_button(
            "Markdown",
            conversation.to_markdown(answering),
            f"{stem}.md",
            "text/markdown",
            on_click="ignore",
            disabled=empty,
        )
        st.download_button(
            "JSON", conversation.to_json(), f"{stem}.json", "application/json", on_click="ignore", disabled=empty
        )
        st.download_button("CSV", conversation.to_csv(), f"{stem}.csv", "text/csv", on_click="ignore", disabled=empty)
    documents, added = dict(session.documents), dict(session.added)
    st.download_button(
        "JSON with the documents (.zip)",
        lambda: to_archive(conversation, documents, added),  # built on click: documents can be large
        f"{stem}.zip",
        "application/zip",
        on_click="ignore",
        disabled=empty,
        icon=":material/folder_zip:",
        key="download_archive",
        help="The JSON transcript and the documents it is about, in one file: resumed, the chat has its pages.",
    )
    uploaded = st.file_uploader(
        "Resume a chat (.json, or .zip with its documents)", key="transcript_upload", max_upload_size=MAX_ARCHIVE_MB
    )
    resumed = state.handle_upload(
        uploaded, "transcript", lambda f: ChatSession.from_transcript(state.chat_store(), f.getvalue())
    )
    if resumed is not None:
        state.set_session(resumed)  # a new chat id: the URL follows
        state.flash("success", resumed_message(resumed))
        st.rerun()


def resumed_message(session: ChatSession) -> str:
    said = f"Resumed “{session.conversation.title}” ({len(session.conversation.turns)} turns)"
    missing = missing_documents(session.conversation, session.documents)
    if missing:
        return f"{said}. {missing_note(missing)}"
    return f"{said}, with its documents." if session.documents else f"{said}."
