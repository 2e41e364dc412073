"""Fixtures shared by the AppTest page tests."""

import pytest
import streamlit as st

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.documents import reading


def fresh_process() -> None:
    """What a server restart does: st.cache_resource/cache_data outlive AppTest instances, the engine cache
    and the reading jobs too (a new process knows no reading job of the one before)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    default_cache().unload()
    with reading._jobs_lock:
        reading._jobs.clear()


@pytest.fixture
def offline_app(tmp_path, monkeypatch):
    """The built-in catalog only, no network: the offline engines answer (ocr_auto by default); a fresh
    process before and after."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    fresh_process()
    yield tmp_path
    reading.cancel_all()
    fresh_process()
