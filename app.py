"""chatvlmllm — chat with your documents. `make run` serves this page on 127.0.0.1:8501.

The pages and their names. Adding a page is one line in PAGES.
"""

from __future__ import annotations

import streamlit as st

from ui import chat_page

st.set_page_config(page_title="chatvlmllm", page_icon="📄", layout="wide")

PAGES = [
    st.Page(chat_page.render, title="Chat", icon=":material/chat:", url_path="chat", default=True),
    st.Page("pages/1_System.py", title="System", icon=":material/memory:", url_path="system"),
    st.Page("pages/2_Benchmark.py", title="Benchmark", icon=":material/speed:", url_path="benchmark"),
]

st.navigation(PAGES).run()
