"""The Models page (pages/3_Models.py) through AppTest, offline: the command to run where there is internet."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.weights import download_command

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "3_Models.py")


def test_the_offline_command_is_the_set_up_dialogs_with_its_revision():
    st.cache_data.clear()  # the hub check is cached for 30 s
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    dots = load_catalog()["dots_ocr"]
    assert dots.revision  # the catalog pins the remote code it runs
    captions = [c.value for c in at.caption if c.value.startswith("Download unavailable")]
    (said,) = [c for c in captions if f"`hf download {dots.hub_id}" in c]
    assert f"`{download_command(dots)}`" in said and f"--revision {dots.revision}" in said
    assert len(captions) == sum(1 for spec in load_catalog().values() if spec.hub_id and not spec.path)
