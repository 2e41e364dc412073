"""The sidebar's model picker (ui/sidebar.py) through AppTest: a model too big for this machine."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.models.hardware import probe
from tests.helpers import write_models_file

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_a_model_that_almost_fits_says_the_margin_once(tmp_path, monkeypatch, tiny_qwen2_vl):
    ram = probe().ram_total_gb
    assert ram
    # Sized to need 90 % of this machine's RAM in float32 (estimate: params × 4 bytes × 1.2 + 1 GB):
    # less than the RAM, more than the share a model may use.
    params_b = (0.9 * ram - 1.0) / 4.8
    models = {"big": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl), "params_b": round(params_b, 3)}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", models)))
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=90).run()
        at.sidebar.selectbox(key="model").set_value("big").run()
        assert not at.exception
        said = [w.value for w in [*at.main.warning, *at.sidebar.warning] if "big" in w.value]
        assert len(said) == 1  # the banner; the sidebar does not repeat it as a warning
        assert said[0].count("won't fit") == 1 and "))" not in said[0]
        assert f"of the {ram:.0f} GB RAM in float32" in said[0]
        assert any("needs about" in c.value for c in at.sidebar.caption)  # under the picker
    finally:
        st.cache_resource.clear()
        default_cache().unload()
