"""Sidebar: model picker and settings, what is running, the chat list and transcripts."""

from __future__ import annotations

import streamlit as st

from chatvlmllm.cache import EngineCache
from chatvlmllm.catalog import ModelSpec
from chatvlmllm.chat import AskOptions, ChatSession
from chatvlmllm.engines.classic_ocr import offline_engine_for
from chatvlmllm.errors import UserError
from chatvlmllm.hardware import HardwareProfile
from chatvlmllm.planner import ATTENTION_CHOICES, plan_load
from chatvlmllm.selection import ModelStatus
from ui import state

OFFLINE_ENGINES = ("rapidocr", "tesseract")
STATUS_ICONS = {
    "ready": ":material/check_circle:",
    "needs download": ":material/download:",
    "won't fit": ":material/block:",
    "incompatible": ":material/error:",
    "unavailable": ":material/cloud_off:",
}
MAX_NEW_TOKENS_LIMIT = 8192
LANGUAGES = {"auto": "Not set", "en": "English / Latin script", "ru": "Russian (Cyrillic)"}
TRANSCRIPT_MAX_MB = 20


def status_label(key: str, status: ModelStatus | None) -> str:
    if status is None:
        return key
    return f"{key} — {status.status}"


def model_picker(
    models: dict[str, ModelSpec], statuses: dict[str, ModelStatus], default_key: str, hw: HardwareProfile
) -> AskOptions:
    """The model, attention and generation settings for the next answer."""
    st.header("Model")
    keys = list(models)
    language = st.selectbox(
        "Document language",
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key="language",
        help="Offline OCR engines differ by script: Tesseract reads Cyrillic, RapidOCR's bundled models do not.",
    )
    language = None if language == "auto" else language
    if st.session_state.get("model") not in keys:  # first run, or the catalog changed under us
        st.session_state["model"] = default_key if default_key in keys else keys[0]
        st.session_state["model_chosen"] = False
    if not st.session_state.get("model_chosen") and default_key in OFFLINE_ENGINES:
        # No VLM here and the user has not picked a model: the offline default follows the language.
        best = offline_engine_for(language)
        if best in keys:
            st.session_state["model"] = best
    key = st.selectbox(
        "Model",
        keys,
        key="model",
        on_change=lambda: st.session_state.update(model_chosen=True),
        format_func=lambda k: status_label(k, statuses.get(k)),
        help="Status for this machine from the planner: ready, needs download, won't fit, incompatible, unavailable.",
    )
    status = statuses.get(key)
    spec = models[key]
    if spec.description:
        st.caption(spec.description)
    if status is not None and status.status != "ready":
        st.caption(f"{STATUS_ICONS.get(status.status, '')} {status.reason}")

    attention = st.selectbox(
        "Attention",
        ATTENTION_CHOICES,
        key="attention",
        help="auto lets the planner choose (flash_attention_2 where it really runs, else sdpa, else eager).",
    )
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
    options = AskOptions(
        model=key,
        attention=attention,
        max_new_tokens=int(max_new_tokens) if max_new_tokens is not None else None,
        temperature=float(temperature),
        repetition_guard=repetition_guard,
        fallback=fallback,
        language=language,
    )
    plan = plan_load(hw, spec, options.overrides())
    if not plan.runnable:
        st.warning(f"{key} cannot run here with these settings: {plan.refusal() or '; '.join(plan.reasons)}")
    return options


def _unload(cache: EngineCache) -> None:
    count = cache.unload()
    state.flash("success", f"Unloaded {count} model(s); their memory is free.")


def runtime_panel(
    session: ChatSession, options: AskOptions, spec: ModelSpec, hw: HardwareProfile, cache: EngineCache
) -> None:
    """What runs now: model, attention, dtype, device, GPU, load time and the last answer's timings."""
    st.header("Running")
    plan = plan_load(hw, spec, options.overrides())
    loaded = cache.loaded()
    key = cache.key_for(spec, plan)
    entry = next((e for e in loaded if e.key == key), None)  # loaded with exactly these settings
    same_model = [e for e in loaded if e.model == spec.key and e.key != key]
    last = session.conversation.last_answer
    m = last.metrics if last else {}
    model_line = f"**Model:** `{spec.key}`"
    if entry is not None:
        model_line += f" — loaded in {entry.load_s:.2f} s"
        if entry.memory_mb:
            model_line += f", {entry.memory_mb:,.0f} MB"
    elif same_model:
        model_line += (
            f" — loaded with {same_model[0].plan.attention}; these settings load it again on the next question"
        )
    else:
        model_line += " — not loaded yet (loads on the first question)"
    st.markdown(model_line)
    st.caption(f"Attention: {plan.attention} · dtype: {plan.dtype} · device: {plan.device}")
    if hw.device == "cuda":
        vram = f"{hw.vram_total_gb:.1f} GB VRAM" if hw.vram_total_gb else "VRAM unknown"
        st.caption(f"GPU: {hw.gpu_name} · {vram} · sm_{hw.capability_str}")
    else:
        st.caption(f"GPU: none found — running on {hw.device.upper()} ({hw.cpu_count} cores)")
    if m:
        answered_by = last.model or m.get("model")
        who = "" if answered_by == spec.key else f" by `{answered_by}`"
        ttft = f"{m['ttft_s']:.2f} s" if m.get("ttft_s") is not None else "—"
        speed = f"{m['tokens_per_s']:.1f} tok/s" if m.get("tokens_per_s") else "— tok/s"
        st.caption(
            f"Last answer{who}: load {m.get('load_s', 0):.2f} s · TTFT {ttft} · total {m.get('total_s', 0):.2f} s · "
            f"{speed} · {m.get('attention')} · stopped by {m.get('stopped_by')}"
        )
    else:
        st.caption("Last answer: none yet (TTFT, total time and tokens/s appear here).")
    others = [e for e in loaded if e.key != key]
    if others:  # every loaded model keeps its memory until unloaded
        listed = ", ".join(
            f"{e.model} ({e.plan.attention}{f', {e.memory_mb:,.0f} MB' if e.memory_mb else ''})" for e in others
        )
        st.caption(f"Also loaded: {listed}")
    st.button(
        "Unload models",
        key="unload_models",
        on_click=_unload,
        args=(cache,),
        disabled=not loaded,
        help="Free the memory of every loaded model; the next question loads again.",
    )


def chats_panel(session: ChatSession) -> None:
    """New chat, switch, rename, delete."""
    st.header("Chats")
    store = state.chat_store()
    st.button("New chat", icon=":material/add:", on_click=state.new_chat, key="new_chat")
    saved = store.list_sessions() if store is not None else []
    titles = {s.id: f"{s.title} ({s.turn_count} turns)" for s in saved}
    if not session.saved:
        titles = {session.id: f"{session.conversation.title} (not saved yet)", **titles}
    if len(titles) > 1:
        # A new key whenever the list changes: a widget whose options change under the same key
        # can report a "change" the user never made (and switch chats by itself).
        picker_key = state.widget_key("chat_picker", session.id, titles)
        st.selectbox(
            "Saved chats",
            list(titles),
            index=list(titles).index(session.id),
            format_func=lambda sid: titles.get(sid, sid),
            key=picker_key,
            on_change=lambda: state.switch_to(st.session_state[picker_key]),
        )
    if session.saved:
        # The title is part of the key: a title set elsewhere (first question) shows at once.
        rename_key = f"rename_{session.id}_{session.conversation.title}"
        st.text_input(
            "Name", value=session.conversation.title, key=rename_key, on_change=_rename, args=(session, rename_key)
        )
        st.button("Delete this chat", icon=":material/delete:", on_click=state.delete_current, key="delete_chat")
    if store is not None:
        st.caption(f"Saved in {store.path}")


def _rename(session: ChatSession, key: str) -> None:
    try:
        session.rename(st.session_state[key])
    except UserError as exc:
        state.flash("error", str(exc))


def transcript_panel(session: ChatSession) -> None:
    """Download the chat (Markdown, JSON, CSV) or resume a downloaded JSON transcript."""
    st.header("Transcript")
    conversation = session.conversation
    stem = "chat-" + conversation.id[:8]
    empty = not conversation.turns
    with st.container(horizontal=True):
        st.download_button(
            "Markdown", conversation.to_markdown(), f"{stem}.md", "text/markdown", on_click="ignore", disabled=empty
        )
        st.download_button(
            "JSON", conversation.to_json(), f"{stem}.json", "application/json", on_click="ignore", disabled=empty
        )
        st.download_button("CSV", conversation.to_csv(), f"{stem}.csv", "text/csv", on_click="ignore", disabled=empty)
    uploaded = st.file_uploader("Resume a JSON transcript", key="transcript_upload", max_upload_size=TRANSCRIPT_MAX_MB)
    resumed = state.handle_upload(
        uploaded, "transcript", lambda f: ChatSession.from_transcript(state.chat_store(), f.getvalue())
    )
    if resumed is not None:
        state.set_session(resumed)
        documents = sorted({t.document for t in resumed.conversation.turns if t.document})
        again = f" Upload {', '.join(documents)} again to ask more about it." if documents else ""
        state.flash(
            "success", f"Resumed “{resumed.conversation.title}” ({len(resumed.conversation.turns)} turns).{again}"
        )
        st.rerun()
