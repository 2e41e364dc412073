"""Streamlit-only helpers for app.py and pages/ (the core package chatvlmllm/ never imports Streamlit)."""
