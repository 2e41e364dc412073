"""Models: every catalog model with its download status, size on disk and licence, and a
Download button with live progress (bytes, speed, ETA), cancel and resume.

Downloads run on background threads owned by the process (chatvlmllm.models.downloads), so they
continue while the user chats; this page polls their progress once a second.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.models import downloads
from chatvlmllm.models.catalog import ModelSpec, load_catalog
from chatvlmllm.models.downloads import DownloadState, WeightsStatus, human_bytes, model_row
from chatvlmllm.models.weights import download_command

POLL_S = 1.0

st.set_page_config(page_title="Models · chatvlmllm", page_icon="📦", layout="wide")
st.title("Models")


@st.cache_data(ttl=30, show_spinner=False)
def hub_problem() -> str | None:
    """Why downloads cannot start (offline, unreachable hub), rechecked every 30 s."""
    return downloads.hub_problem()


def table(catalog: dict[str, ModelSpec]) -> pd.DataFrame:
    rows = []
    for spec in catalog.values():
        row = model_row(spec)
        rows.append(
            {
                "model": row["key"],
                "name": row["name"],
                "status": row["status"],
                "on disk": human_bytes(row["size_on_disk_bytes"]) if row["size_on_disk_bytes"] else "",
                "download": f"{row['download_gb']:.1f} GB" if row["download_gb"] else "",
                "licence": row["licence"],
            }
        )
    return pd.DataFrame(rows)


def download_controls(spec: ModelSpec, problem: str | None) -> None:
    """One model's button row: Download/Resume, or progress with Cancel while it runs."""
    manager = downloads.manager()
    current = manager.get(spec.key)
    status = downloads.weights_status(spec)
    label = f"{spec.display_name} · {spec.licence or 'licence: see the model card'}"
    st.markdown(f"**{spec.key}** — {label}")
    if current is not None and current.running:
        progress = current.progress
        st.progress(progress.fraction, text=f"Downloading {spec.key}: {progress.summary()}")
        if st.button("Cancel", key=f"cancel_{spec.key}"):
            current.cancel()
            st.rerun()
        return
    if current is not None and current.progress.state is DownloadState.FAILED:
        st.error(current.progress.error or "the download failed")
    elif current is not None and current.progress.state is DownloadState.CANCELLED:
        st.info(f"Cancelled at {current.progress.summary()}; finished files are kept.")
    if status is WeightsStatus.READY:
        st.caption(f"ready ({human_bytes(downloads.size_on_disk(spec))} on disk)")
        return
    size = f" ({spec.weights_gb:.1f} GB)" if spec.weights_gb else ""
    resume = status is WeightsStatus.PARTIAL or (current is not None and current.progress.done_bytes > 0)
    verb = "Resume download" if resume else "Download"
    command = download_command(spec)  # with --revision where the catalog pins one, as the set-up dialog says
    help_text = f"{problem}. Where there is internet: `{command}`" if problem else None
    if st.button(f"{verb}{size}", key=f"download_{spec.key}", disabled=problem is not None, help=help_text):
        manager.start(spec)
        st.rerun()
    if problem:
        st.caption(f"Download unavailable: {problem}. Where there is internet: `{command}`")


try:
    catalog = load_catalog()
except UserError as exc:
    st.error(str(exc))
    st.stop()

problem = hub_problem()
if problem:
    st.warning(f"Downloads are unavailable: {problem}.")
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


st.subheader("Download")
downloads_panel()
