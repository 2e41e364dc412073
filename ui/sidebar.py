"""Sidebar: model picker and settings, what is running, the chat list and transcripts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st

from chatvlmllm.chat.archive import MAX_ARCHIVE_MB, missing_documents, missing_note, to_archive
from chatvlmllm.chat.engine_cache import EngineCache, LoadedEngine
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import SessionInfo
from chatvlmllm.decisions import Readiness
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_, _, current_language, format_datetime, format_number, ngettext, use_language
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.choice import ModelStatus
from chatvlmllm.models.doctor import readiness_words
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.planner import ATTENTION_CHOICES, LoadPlan, plan_load
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
# The document languages, marked here and translated where the picker shows them.
LANGUAGES = {"auto": N_("Not set"), "en": N_("English / Latin script"), "ru": N_("Russian (Cyrillic)")}


def in_this_language(format_func: Callable[[str], str]) -> Callable[[str], str]:
    """A widget's format_func that writes in this run's language on whichever thread Streamlit calls it
    (AppTest calls it from the test's thread, where no language is set)."""
    language = current_language()

    def formatted(value: str) -> str:
        with use_language(language):
            return format_func(value)

    return formatted


def status_label(key: str, status: ModelStatus | None) -> str:
    """ "key — ready here" or "key — needs set-up: needs download" (ready ones are listed first)."""
    if status is None:
        return key
    if status.status == Readiness.READY:
        return _("{model} — ready here").format(model=key)
    return _("{model} — needs set-up: {status}").format(model=key, status=readiness_words(status.status))


def picker_order(keys: list[str], statuses: dict[str, ModelStatus]) -> list[str]:
    """Ready here first, then the ones that need set-up, each group in catalog order."""
    ready = [k for k in keys if (s := statuses.get(k)) is not None and s.status == Readiness.READY]
    return ready + [k for k in keys if k not in ready]


def model_picker(
    models: dict[str, ModelSpec], statuses: dict[str, ModelStatus], default_key: str, hw: HardwareProfile
) -> AskOptions:
    """The model, attention and generation settings for the next answer."""
    st.header(_("Model"))
    language = _language_picker()
    _preselect_model(models, default_key, language)
    key = _model_select(models, statuses)
    attention = st.selectbox(
        _("Attention"),
        ATTENTION_CHOICES,
        key="attention",
        format_func=in_this_language(lambda choice: _("auto") if choice == "auto" else choice),
        help=_("`auto` lets the planner choose (`flash_attention_2` where it really runs, else `sdpa`, else `eager`)."),
    )
    options = _generation_settings(key, attention, language)
    plan = plan_load(hw, models[key], options.overrides())
    reason = (plan.why_not() or "").rstrip(".")
    status = statuses.get(key)
    if not plan.runnable and (status is None or reason != status.reason.rstrip(".")):  # not said just above
        st.warning(_("{model} cannot run here with these settings ({reason}).").format(model=key, reason=reason))
    return options


def _language_picker() -> str | None:
    """The document's language, None when not set."""
    chosen_language = st.selectbox(
        _("Document language"),
        tuple(LANGUAGES),
        format_func=in_this_language(lambda code: _(LANGUAGES[code])),
        key="language",
        help=_("Offline OCR engines differ by script: Tesseract reads Cyrillic, RapidOCR's bundled models do not."),
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
        _("Model"),
        picker_order(list(models), statuses),
        key="model",
        on_change=lambda: st.session_state.update(model_chosen=True),
        format_func=in_this_language(lambda k: status_label(k, statuses.get(k))),
        help=_("Ready here: runs on this machine now. Needs set-up: the reason is shown below the picker."),
    )
    status = statuses.get(key)
    spec = models[key]
    if spec.description:
        st.caption(_(spec.description))  # a built-in family's note is in the catalogue
    if status is not None and status.status != Readiness.READY:
        st.caption(f"{STATUS_ICONS.get(status.status, '')} {status.reason}")
    return key


def _generation_settings(key: str, attention: str, language: str | None) -> AskOptions:
    """The expander's generation settings, with the model, attention and language chosen above."""
    with st.expander(_("Generation settings"), key="generation_settings"):
        max_new_tokens = st.number_input(
            _("Max new tokens"),
            min_value=1,
            max_value=MAX_NEW_TOKENS_LIMIT,
            value=None,
            step=64,
            key="max_new_tokens",
            placeholder=_("model default"),
            help=_(
                "Empty: 1024, and whole-page transcriptions get the model's own (GOT-OCR 4096, dots.ocr 8192). "
                "A number you set is used as is."
            ),
        )
        temperature = st.slider(
            _("Temperature"), 0.0, 1.5, 0.0, 0.05, key="temperature", help=_("0 = greedy (repeatable)")
        )
        repetition_guard = st.checkbox(
            _("Stop answers that loop"),
            value=True,
            key="repetition_guard",
            help=_("Ends an answer that repeats itself."),
        )
        fallback = st.checkbox(
            _("Fall back to other models"),
            value=True,
            key="fallback",
            help=_("Try the next model when this one fails."),
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
    state.flash(
        "success",
        ngettext(
            "Unloaded {count} model; its memory is free.", "Unloaded {count} models; their memory is free.", count
        ).format(count=format_number(count)),
    )


def runtime_panel(
    session: ChatSession, options: AskOptions, spec: ModelSpec, hw: HardwareProfile, cache: EngineCache, details: bool
) -> None:
    """What the next question runs on; with details, the plan and the last answer's figures."""
    st.header(_("Running"))
    plan = plan_load(hw, spec, options.overrides())
    loaded = cache.loaded()
    key = cache.key_for(spec, plan)
    entry = next((e for e in loaded if e.key == key), None)  # loaded with exactly these settings
    same_model = [e for e in loaded if e.model == spec.key and e.key != key]
    st.markdown(_model_line(spec, plan, entry, same_model, options.fallback))
    if plan.runnable and plan.attention != "n/a":  # what is shown is what will run
        st.caption(
            _("Attention: {attention} · dtype: {dtype} · device: {device}").format(
                attention=plan.attention, dtype=plan.dtype, device=plan.device
            )
        )
    st.caption(_hardware_line(hw))
    last = session.conversation.last_answer
    if details and last is not None and last.metrics:
        st.caption(_("Last answer: {figures}").format(figures=text_view.caption(last, details=True)))
    others = [e for e in loaded if e.key != key]
    if others:  # every loaded model keeps its memory until unloaded
        listed = ", ".join(e.model + (f" ({', '.join(_loaded_facts(e))})" if _loaded_facts(e) else "") for e in others)
        st.caption(_("Also loaded: {models}").format(models=listed))
    st.button(
        _("Unload models"),
        key="unload_models",
        on_click=_unload,
        args=(cache,),
        disabled=not loaded,
        help=_("Free the memory of every loaded model; the next question loads again."),
    )


def _model_line(
    spec: ModelSpec, plan: LoadPlan, entry: LoadedEngine | None, same_model: list[LoadedEngine], fallback: bool
) -> str:
    """ "**Model:** `key` — loaded in 2.1 s, 1,234 MB" (or why it is not loaded), in the interface language."""
    model = f"`{spec.key}`"
    if not plan.runnable:
        if fallback:
            return _("**Model:** {model} — cannot run with these settings (the fallback answers)").format(model=model)
        return _("**Model:** {model} — cannot run with these settings").format(model=model)
    if entry is not None:
        seconds = format_number(entry.load_s, 1)
        if entry.memory_mb:
            return _("**Model:** {model} — loaded in {seconds} s, {memory} MB").format(
                model=model, seconds=seconds, memory=format_number(entry.memory_mb, 0)
            )
        return _("**Model:** {model} — loaded in {seconds} s").format(model=model, seconds=seconds)
    if same_model:
        return _("**Model:** {model} — loaded with {attention}; these settings load it again").format(
            model=model, attention=f"`{same_model[0].plan.attention}`"
        )
    return _("**Model:** {model} — loads on the first question").format(model=model)


def _hardware_line(hw: HardwareProfile) -> str:
    if hw.device != "cuda":
        return ngettext(
            "No GPU found: running on the {device} ({count} core)",
            "No GPU found: running on the {device} ({count} cores)",
            hw.cpu_count or 0,
        ).format(device=hw.device.upper(), count=format_number(hw.cpu_count or 0))
    vram = (
        _("{size} GB VRAM").format(size=format_number(hw.vram_total_gb, 1)) if hw.vram_total_gb else _("VRAM unknown")
    )
    return f"GPU: {hw.gpu_name} · {vram} · sm_{hw.capability_str}"


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
    return facts + ([_("{memory} MB").format(memory=format_number(entry.memory_mb, 0))] if entry.memory_mb else [])


def chats_panel(session: ChatSession) -> None:
    """New chat, the saved chats (one button per chat id: labels may repeat), rename, delete."""
    st.header(_("Chats"))
    store = state.chat_store()
    st.button(_("New chat"), icon=":material/add:", on_click=state.new_chat, key="new_chat")
    saved = state.saved_chats(store)
    show_all = len(saved) > CHATS_SHOWN and st.toggle(
        ngettext("Show all {count} chats", "Show all {count} chats", len(saved)).format(
            count=format_number(len(saved))
        ),
        key="show_all_chats",
    )
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
                help=_chat_help(info.turn_count, current),
            )
    if session.saved:
        # The title is part of the key: a title set elsewhere (first question) shows at once.
        rename_key = f"rename_{session.id}_{session.conversation.title}"
        st.text_input(
            _("Name"), value=session.conversation.title, key=rename_key, on_change=_rename, args=(session, rename_key)
        )
        with st.popover(_("Delete this chat"), icon=":material/delete:", key="delete_chat"):
            st.markdown(
                _("Delete “{title}” and its documents? This cannot be undone.").format(title=session.conversation.title)
            )
            st.button(_("Delete"), type="primary", key="delete_chat_confirm", on_click=state.delete_current)
    if store is not None:
        st.caption(_("Saved in {path}").format(path=f"`{store.path}`"))


def _chat_help(turns: int, current: bool) -> str:
    said = ngettext("{count} message", "{count} messages", turns).format(count=format_number(turns))
    return _("{messages} (open now)").format(messages=said) if current else said


def _rename(session: ChatSession, key: str) -> None:
    try:
        session.rename(st.session_state[key])
    except UserError as exc:  # StoreError included: "not saved", never a traceback
        state.flash("error", str(exc))


def transcript_panel(session: ChatSession, answering: bool = False) -> None:
    """Download the chat (Markdown, JSON, CSV, or a .zip with its documents) or resume a downloaded one.
    `answering`: the last question's answer is still being written (not marked as not answered)."""
    st.header(_("Transcript"))
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
        _("JSON with the documents (.zip)"),
        lambda: to_archive(conversation, documents, added),  # built on click: documents can be large
        f"{stem}.zip",
        "application/zip",
        on_click="ignore",
        disabled=empty,
        icon=":material/folder_zip:",
        key="download_archive",
        help=_("The JSON transcript and the documents it is about, in one file: resumed, the chat has its pages."),
    )
    uploaded = st.file_uploader(
        _("Resume a chat (.json, or .zip with its documents)"), key="transcript_upload", max_upload_size=MAX_ARCHIVE_MB
    )
    resumed = state.handle_upload(
        uploaded, "transcript", lambda f: ChatSession.from_transcript(state.chat_store(), f.getvalue())
    )
    if resumed is not None:
        state.set_session(resumed)  # a new chat id: the URL follows
        state.flash("success", resumed_message(resumed))
        st.rerun()


def resumed_message(session: ChatSession) -> str:
    turns = len(session.conversation.turns)
    said = ngettext("Resumed “{title}” ({count} turn)", "Resumed “{title}” ({count} turns)", turns).format(
        title=session.conversation.title, count=format_number(turns)
    )
    missing = missing_documents(session.conversation, session.documents)
    if missing:
        return f"{said}. {missing_note(missing)}"
    return _("{resumed}, with its documents.").format(resumed=said) if session.documents else f"{said}."
