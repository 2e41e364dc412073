"""The System page (pages/1_System.py) through AppTest on a machine without a GPU: words, never blanks or None."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from tests.helpers import engine_for

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "1_System.py")


@pytest.fixture
def offline_engine_loaded():
    st.cache_resource.clear()
    engine_for(default_cache(), "rapidocr")  # loaded as the chat page would: its memory is not measured
    yield
    default_cache().unload()
    st.cache_resource.clear()


def test_no_gpu_and_unmeasured_memory_are_said_in_words(offline_engine_loaded):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    hardware, loaded = (frame.value for frame in at.dataframe)
    facts = dict(zip(hardware["Property"], hardware["Value"], strict=True))
    assert facts["GPU"] == "no GPU" and facts["GPU memory (GB)"] == "no GPU"
    assert facts["flash-attn version"] == "not installed"
    assert all(value.strip() and value != "None" for value in facts.values())
    engine = loaded[loaded["Model"] == "rapidocr"].iloc[0]
    assert engine["Memory (MB)"] == "not measured" and engine["Quantization"] == "none"
    plans = at.table[0].value
    assert not (plans == "").any().any() and not (plans == "None").any().any()
