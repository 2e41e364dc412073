"""What the page says about the models: a small badge, and the full story in a set-up dialog."""

from __future__ import annotations

import streamlit as st

from chatvlmllm.decisions import Readiness
from chatvlmllm.i18n import _, format_size
from chatvlmllm.models import downloads
from chatvlmllm.models.catalog import load_catalog, models_file
from chatvlmllm.models.choice import ModelStatus
from chatvlmllm.models.doctor import readiness_words
from chatvlmllm.models.tasks import is_offline_engine

DISMISSED_KEY = "ocr_badge_dismissed"


def what_to_do() -> str:
    example = '```toml\n[models.my_vlm]\nfamily = "qwen2_vl"\npath = "/models/Qwen2-VL-2B-Instruct"\n```'
    return _(
        "**To chat with a vision-language model:**\n"
        "- with internet: download a model on the **Models** page (or `chatvlmllm pull KEY`), or run "
        "`hf download Qwen/Qwen2-VL-2B-Instruct`;\n"
        "- offline: copy a Hugging Face cache (`~/.cache/huggingface/hub`) from a machine that has the weights, "
        "or point a catalog entry at a local folder in `{models_file}`:\n"
        "{example}\n"
        "- the **System** page lists every model with the planner's reasons."
    ).format(models_file=models_file(), example=example)


def setup_dialog(statuses: dict[str, ModelStatus]) -> None:
    # The dialog's title is given when it opens: a decorator's would be fixed in English at import time.
    st.dialog(_("Set up a model"), width="large")(_setup_body)(statuses)


def _setup_body(statuses: dict[str, ModelStatus]) -> None:
    st.markdown(what_to_do())
    st.markdown("**{}**".format(_("Why each model cannot run here")))
    for key, status in statuses.items():
        if not status.status.usable:
            st.markdown(f"- `{key}` — **{readiness_words(status.status)}**: {status.reason}")


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
        st.error("**{}**".format(_("No model can run on this machine right now.")))
        if st.button(_("Set up a model"), key="setup_model_none", icon=":material/build:"):
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
        reason = str(status.reason).rstrip(".")
        st.warning(
            _(
                "`{model}` cannot answer here ({status}: {reason}). {instead} Pick a model marked *{ready}*, or set one"
                " up."
            ).format(
                model=selected,
                status=readiness_words(status.status),
                reason=reason,
                instead=instead,
                ready=readiness_words(Readiness.READY),
            ),
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
        st.badge(_("Text extraction only: no vision-language model here"), icon=":material/info:", color="orange")
        if st.button(_("Set up a model"), key="setup_model", type="tertiary", icon=":material/build:"):
            setup_dialog(statuses)
        st.button(
            _("Dismiss"),
            key="dismiss_ocr_badge",
            type="tertiary",
            on_click=lambda: st.session_state.update({DISMISSED_KEY: True}),
        )


def _offer_download(key: str, status: ModelStatus, instead: str) -> None:
    """A model that needs its weights: ask before a multi-GB download, never start one inside an answer."""
    running = downloads.manager().get(key)
    if running is not None and running.running:
        st.info(
            _("Downloading `{model}`: {progress}. {instead}").format(
                model=key, progress=running.progress.summary(), instead=instead
            )
        )
        st.page_link("pages/3_Models.py", label=_("Follow it on the Models page"), icon=":material/download:")
        return
    st.info(
        _("`{model}` is not downloaded yet. {instead} {reason}")
        .format(model=key, instead=instead, reason=status.reason)
        .strip()
    )
    spec = load_catalog().get(key)
    if spec is not None and spec.hub_id and not spec.path:
        size = format_size(spec.weights_gb * 1e9) if spec.weights_gb else _("size unknown")
        offer = _("Download {model}, {size}?").format(model=spec.display_name, size=size)
        if st.button(offer, key=f"offer_download_{key}", icon=":material/download:"):
            downloads.manager().start(spec)
            st.toast(
                _("Downloading {model}: progress, cancel and resume on the Models page.").format(
                    model=spec.display_name
                )
            )
