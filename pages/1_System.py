"""System: the hardware profile, the planner's table for every model (as `chatvlmllm doctor`),
and the engines loaded now with their memory."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.models.doctor import doctor_report, hardware_facts, memory_words, model_facts
from ui import state

st.set_page_config(page_title="System · chatvlmllm", page_icon="🖥️", layout="wide")
st.title("System")
state.show_flashes()

state.hardware_profile()  # probed once per process, shared with the chat page
cache = state.engine_cache()

gpu = st.text_input(
    "Plan for a hypothetical GPU (compute capability:VRAM GB)",
    placeholder="e.g. 12.0:16 for an RTX 5070 Ti; empty = this machine",
    key="system_gpu",
).strip()
assume_fa = st.checkbox("Assume flash-attn works on it", key="system_assume_fa", disabled=not gpu)
try:
    report = doctor_report(gpu or None, assume_flash_attn=assume_fa)
except UserError as exc:  # a malformed GPU spec, or a broken models file
    st.error(str(exc))
    try:
        report = doctor_report()
    except UserError:
        st.stop()

st.subheader("Hardware" + (" (hypothetical)" if report["hardware"]["simulated"] else ""))
hardware = pd.DataFrame(hardware_facts(report["hardware"]), columns=["Property", "Value"])
st.dataframe(hardware, hide_index=True, width="stretch")

st.subheader("Models on this machine")
st.caption("The planner's view, the same as `chatvlmllm doctor`.")
rows = [model_facts(model) for model in report["models"]]
st.table(pd.DataFrame(rows).set_index("Model"))  # a table wraps the reasons instead of cutting them

st.subheader("Loaded engines")
loaded = cache.loaded()
if not loaded:
    st.info("No model is loaded. A model loads on the first question that needs it and stays for the next ones.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Model": entry.model,
                    "Runs on": entry.plan.device,
                    "Precision": entry.plan.dtype,
                    "Attention": entry.plan.attention,
                    "Quantization": entry.plan.quantization or "none",
                    "Load time (s)": round(entry.load_s, 2),
                    "Memory (MB)": memory_words(entry.memory_mb),
                    "Loads so far": cache.load_counts[entry.model],
                }
                for entry in loaded
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if st.button("Unload all", icon=":material/memory:", key="system_unload"):
        state.flash("success", f"Unloaded {cache.unload()} engine(s); their memory is free.")
        st.rerun()
