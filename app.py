"""chatvlmllm — chat with your documents. `make run` serves this page on 127.0.0.1:8501.

A thin view: the chat logic is chatvlmllm.chat, the widgets are in ui/. Nothing here
loads a model: the page renders first, the model loads on the first question.
"""

from __future__ import annotations

import streamlit as st

from ui import answer_view, banners, document_view, sidebar, state, text_search

st.set_page_config(page_title="chatvlmllm", page_icon="📄", layout="wide")

hw = state.hardware_profile()
cache = state.engine_cache()
catalog = state.catalog()
statuses = state.statuses(catalog.version)
default_key, default_why, default_problem = state.initial_model(catalog.version)
session = state.chat_session()
# A click during an answer (Stop, a new question) starts this run while the previous one may
# still be streaming on another thread: stop that answer and wait until it is saved.
if not session.settle():
    st.warning("The previous answer is still finishing (a model may be loading); reload in a moment.")

with st.sidebar:
    options = sidebar.model_picker(catalog.models, statuses, default_key, hw)
    # Filled at the end of the run, so they show this run's answer.
    runtime_box, chats_box, transcript_box = st.container(), st.container(), st.container()

st.title("Chat with your document")
state.show_flashes()
if catalog.error:
    st.error(f"{catalog.error} — using the built-in models only.")
banners.availability(statuses, default_key, default_why, default_problem, options.model)

document_col, chat_col = st.columns([2, 3], gap="large")
with document_col:
    document_view.render(session)
    text_search.render(session)
with chat_col:
    quick = answer_view.quick_prompts(session)
    answer_view.render_history(session)

question = st.chat_input("Ask about the document…", key="question") or quick
if question:
    with chat_col:
        answer_view.answer(session, question, options, hw, catalog.models, cache)

with runtime_box:
    sidebar.runtime_panel(session, options, catalog.models[options.model], hw, cache)
with chats_box:
    sidebar.chats_panel(session)
with transcript_box:
    sidebar.transcript_panel(session)
state.sync_url(session)
