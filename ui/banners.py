"""What the page says about the models: a small badge, and the full story in a set-up dialog."""

from __future__ import annotations

import streamlit as st

from chatvlmllm.decisions import Readiness
from chatvlmllm.i18n import _
from chatvlmllm.models import downloads
from chatvlmllm.models.catalog import load_catalog, models_file
from chatvlmllm.models.choice import ModelStatus
from chatvlmllm.models.tasks import is_offline_engine

DISMISSED_KEY = "ocr_badge_dismissed"


def what_to_do() -> str:
    return (
        "**To chat with a vision-language model:**\n"
        "- with internet: download a model on the **Models** page (or `chatvlmllm pull KEY`), or run "
        "`hf download Qwen/Qwen2-VL-2B-Instruct`;\n"
        "- offline: copy a Hugging Face cache (`~/.cache/huggingface/hub`) from a machine that has the weights, "
        f"or point a catalog entry at a local folder in `{models_file()}`:\n"
        '```toml\n[models.my_vlm]\nfamily = "qwen2_vl"\npath = "/models/Qwen2-VL-2B-Instruct"\n```\n'
        "- the **System** page lists every model with the planner's reasons."
    )


@st.dialog("Set up a model", width="large")
def setup_dialog(statuses: dict[str, ModelStatus]) -> None:
    st.markdown(what_to_do())
    st.markdown("**Why each model cannot run here**")
    for key, status in statuses.items():
        if not status.status.usable:
            st.markdown(f"- `{key}` — **{status.status}**: {status.reason}")


def availability(
    statuses: dict[str, ModelStatus],
    default_key: str,
    problem: str | None,
    selected: str,
    answering: str,
    ocr_only: bool,
) -> None:
    """Nothing when the chosen model is ready; else one line on what it means (and which model answers
    instead), with the way out."""
    if problem:
        st.error(problem)
    usable = [key for key, status in statuses.items() if status.status.usable]
    if not usable:
        st.error("**No model can run on this machine right now.**")
        if st.button("Set up a model", key="setup_model_none", icon=":material/build:"):
            setup_dialog(statuses)
        return
    status = statuses.get(selected)
    if status is None or status.status == Readiness.READY:
        if is_offline_engine(default_key) and ocr_only:  # no VLM can run here: the offline engine answers
            _ocr_only_badge(statuses)
        return
    instead = _instead(selected, answering, ocr_only)
    if status.status == Readiness.NEEDS_DOWNLOAD:
        _offer_download(selected, status, instead)
    else:
        reason = status.reason.rstrip(".")
        st.warning(
            f"`{selected}` cannot answer here ({status.status}: {reason}). {instead} "
            "Pick a model under *Ready here*, or set one up.",
            icon=":material/swap_horiz:",
        )
        if st.button(_("Set up a model"), key="setup_model_chosen", type="tertiary", icon=":material/build:"):
            setup_dialog(statuses)


def _instead(selected: str, answering: str, ocr_only: bool) -> str:
    """Who answers instead of the chosen model, and what that means for the user."""
    if answering == selected:
        return _("Questions fail until it can run (or turn on *Fall back to other models*).")
    if ocr_only:
        return _("Questions go to `{model}`, which extracts text only: it does not chat.").format(model=answering)
    return _("Questions go to `{model}`.").format(model=answering)


def _ocr_only_badge(statuses: dict[str, ModelStatus]) -> None:
    """One line, dismissible: the full explanation is one click away, not a wall of text."""
    if st.session_state.get(DISMISSED_KEY):
        return
    with st.container(horizontal=True, vertical_alignment="center", key="ocr_only_badge"):
        st.badge("Text extraction only: no vision-language model here", icon=":material/info:", color="orange")
        if st.button("Set up a model", key="setup_model", type="tertiary", icon=":material/build:"):
            setup_dialog(statuses)
        st.button(
            "Dismiss",
            key="dismiss_ocr_badge",
            type="tertiary",
            on_click=lambda: st.session_state.update({DISMISSED_KEY: True}),
        )


def _offer_download(key: str, status: ModelStatus, instead: str) -> None:
    """A model that needs its weights: ask before a multi-GB download, never start one inside an answer."""
    running = downloads.manager().get(key)
    if running is not None and running.running:
        st.info(f"Downloading `{key}`: {running.progress.summary()}. {instead}")
        st.page_link("pages/3_Models.py", label="Follow it on the Models page", icon=":material/download:")
        return
    st.info(f"`{key}` is not downloaded yet. {instead} {status.reason}".strip())
    spec = load_catalog().get(key)
    if spec is not None and spec.hub_id and not spec.path:
        size = downloads.human_bytes(int(spec.weights_gb * 1e9)) if spec.weights_gb else "size unknown"
        if st.button(f"Download {spec.display_name}, {size}?", key=f"offer_download_{key}", icon=":material/download:"):
            downloads.manager().start(spec)
            st.toast(f"Downloading {spec.display_name}: progress, cancel and resume on the Models page.")
