"""Models: every catalog model with its download status, size on disk and licence, and a
Download button with live progress (bytes, speed, ETA), cancel and resume.

Downloads run on background threads owned by the process (chatvlmllm.models.downloads), so they
continue while the user chats; this page polls their progress once a second.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.i18n import _, current_language, format_size
from chatvlmllm.models import downloads
from chatvlmllm.models.catalog import ModelSpec, load_catalog
from chatvlmllm.models.downloads import DownloadState, WeightsStatus, model_row, weights_words
from chatvlmllm.models.weights import download_command

POLL_S = 1.0

st.set_page_config(page_title=_("Models") + " · chatvlmllm", page_icon="📦", layout="wide")
st.title(_("Models"))


def hub_problem() -> str | None:
    """Why downloads cannot start (offline, unreachable hub), rechecked every 30 s."""
    return _hub_problem(current_language())


@st.cache_data(ttl=30, show_spinner=False)
def _hub_problem(language: str) -> str | None:  # cached per language: the reason is written in it
    return downloads.hub_problem()


def table(catalog: dict[str, ModelSpec]) -> pd.DataFrame:
    rows = []
    for spec in catalog.values():
        row = model_row(spec)
        rows.append(
            {
                _("model"): row["key"],
                _("name"): row["name"],
                _("status"): weights_words(row["status"]),
                _("on disk"): format_size(row["size_on_disk_bytes"]) if row["size_on_disk_bytes"] else "",
                _("download"): format_size(row["download_gb"] * 1e9) if row["download_gb"] else "",
                _("licence"): row["licence"],
            }
        )
    return pd.DataFrame(rows)


def download_controls(spec: ModelSpec, problem: str | None) -> None:
    """One model's button row: Download/Resume, or progress with Cancel while it runs."""
    manager = downloads.manager()
    current = manager.get(spec.key)
    status = downloads.weights_status(spec)
    label = f"{spec.display_name} · {spec.licence or _('licence: see the model card')}"
    st.markdown(f"**{spec.key}** — {label}")
    if current is not None and current.running:
        progress = current.progress
        st.progress(
            progress.fraction,
            text=_("Downloading {model}: {progress}").format(model=spec.key, progress=progress.summary()),
        )
        if st.button(_("Cancel"), key=f"cancel_{spec.key}"):
            current.cancel()
            st.rerun()
        return
    if current is not None and current.progress.state is DownloadState.FAILED:
        st.error(str(current.progress.error or _("the download failed")))
    elif current is not None and current.progress.state is DownloadState.CANCELLED:
        st.info(_("Cancelled at {progress}; finished files are kept.").format(progress=current.progress.summary()))
    if status is WeightsStatus.READY:
        st.caption(_("ready ({size} on disk)").format(size=format_size(downloads.size_on_disk(spec))))
        return
    resume = status is WeightsStatus.PARTIAL or (current is not None and current.progress.done_bytes > 0)
    command = download_command(spec)  # with --revision where the catalog pins one, as the set-up dialog says
    help_text = _("{problem}. Where there is internet: `{command}`").format(problem=problem, command=command)
    if st.button(
        download_label(spec, resume),
        key=f"download_{spec.key}",
        disabled=problem is not None,
        help=help_text if problem else None,
    ):
        manager.start(spec)
        st.rerun()
    if problem:
        st.caption(
            _("Download unavailable: {problem}. Where there is internet: `{command}`").format(
                problem=problem, command=command
            )
        )


def download_label(spec: ModelSpec, resume: bool) -> str:
    """ "Download (4.4 GB)", "Resume download", ... in the interface language."""
    if spec.weights_gb:
        size = format_size(spec.weights_gb * 1e9)
        return (_("Resume download ({size})") if resume else _("Download ({size})")).format(size=size)
    return _("Resume download") if resume else _("Download")


try:
    catalog = load_catalog()
except UserError as exc:
    st.error(str(exc))
    st.stop()

problem = hub_problem()
if problem:
    st.warning(_("Downloads are unavailable: {problem}.").format(problem=problem))
st.dataframe(table(catalog), hide_index=True, width="stretch")

downloadable = [spec for spec in catalog.values() if spec.hub_id and not spec.path]
running = any(d.running for d in downloads.manager().downloads.values())


@st.fragment(run_every=POLL_S if running else None)
def downloads_panel() -> None:
    for spec in downloadable:
        with st.container(border=True):
            download_controls(spec, problem)
    if not any(d.running for d in downloads.manager().downloads.values()) and running:
        st.rerun()  # a download just finished: refresh the table above


st.subheader(_("Download"))
downloads_panel()
