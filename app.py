"""chatvlmllm — chat with your documents. `make run` serves this page on 127.0.0.1:8501.

The pages and their names. Adding a page is one line in PAGES.
"""

from __future__ import annotations

import streamlit as st

from chatvlmllm import logs
from chatvlmllm.i18n import _
from ui import chat_page, language, widget_texts

logs.configure()  # quiet (warnings only) unless CHATVLMLLM_LOG_LEVEL says otherwise

st.set_page_config(page_title="chatvlmllm", page_icon="📄", layout="wide")
language.apply()  # this session's interface language, before any text is written (docs/i18n.md)

PAGES = [
    st.Page(chat_page.render, title=_("Chat"), icon=":material/chat:", url_path="chat", default=True),
    st.Page("pages/1_System.py", title=_("System"), icon=":material/memory:", url_path="system"),
    st.Page("pages/2_Benchmark.py", title=_("Benchmark"), icon=":material/speed:", url_path="benchmark"),
    st.Page("pages/3_Models.py", title=_("Models"), icon=":material/download:", url_path="models"),
]

with st.sidebar:
    language.switch()
widget_texts.apply()
st.navigation(PAGES).run()
